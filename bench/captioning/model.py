"""NIC (Show and Tell, Vinyals et al. 2015): the image's pooled feature, linearly embedded, is fed
to a one-layer LSTM once, before the <start> token (t = -1); then the words. Trained with
per-word cross-entropy; captions come from greedy decoding or beam search (the paper's beam 20),
batched over images on the device. A beam's score is the sum of its words' log-probabilities
(no length normalisation, as Show and Tell); a beam that has emitted <end> keeps its score.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.captioning.vocab import END, PAD, START


class NIC(nn.Module):
    def __init__(self, feature_dim: int, vocab_size: int, embed: int = 100, hidden: int = 300, dropout: float = 0.1):
        super().__init__()
        self.image = nn.Linear(feature_dim, embed)
        self.word = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, num_layers=1, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """Logits (B, T - 1, V) for captions[:, 1:] given the image and captions[:, :-1]
        (captions: <start> w1 .. wn <end> <pad> ..., shape (B, T))."""
        steps = torch.cat([self.image(features).unsqueeze(1), self.word(captions[:, :-1])], dim=1)
        hidden, _ = self.lstm(self.drop(steps))
        return self.out(self.drop(hidden[:, 1:]))

    def _start(self, features: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The state after the image (t = -1) and the <start> token (t = 0): log-probs of the first word."""
        _, state = self.lstm(self.image(features).unsqueeze(1))
        start = torch.full((features.shape[0], 1), START, dtype=torch.long, device=features.device)
        out, state = self.lstm(self.word(start), state)
        return torch.log_softmax(self.out(out[:, -1]), dim=-1), state

    @torch.no_grad()
    def greedy(self, features: torch.Tensor, max_length: int) -> list[list[int]]:
        logp, state = self._start(features)
        words = logp.argmax(-1)
        seqs = [words]
        done = words == END
        for _ in range(max_length):
            if bool(done.all()):
                break
            out, state = self.lstm(self.word(words.unsqueeze(1)), state)
            words = torch.where(done, torch.full_like(words, END), torch.log_softmax(self.out(out[:, -1]), -1).argmax(-1))
            seqs.append(words)
            done = done | (words == END)
        return _trim(torch.stack(seqs, 1))

    @torch.no_grad()
    def beam_search(self, features: torch.Tensor, beam: int, max_length: int) -> list[list[int]]:
        """The highest-scoring caption of each image (word ids, without <start> and <end>), all
        images' beams advanced together: (B * beam) rows through the LSTM per step."""
        if beam == 1:
            return self.greedy(features, max_length)
        b = features.shape[0]
        logp, (h, c) = self._start(features)  # (B, V)
        vocab = logp.shape[-1]
        scores, words = logp.topk(min(beam, vocab), dim=-1)  # (B, K)
        k = scores.shape[1]
        seqs = words.unsqueeze(-1)  # (B, K, 1)
        h, c = (s.repeat_interleave(k, dim=1) for s in (h, c))  # (1, B*K, H)
        done = words == END
        for _ in range(max_length):
            if bool(done.all()):
                break
            out, (h, c) = self.lstm(self.word(seqs[:, :, -1].reshape(-1, 1)), (h, c))
            step = torch.log_softmax(self.out(out[:, -1]), -1).view(b, k, vocab)
            # a finished beam continues only with <end>, at no cost: its score stays
            frozen = torch.full_like(step, float("-inf"))
            frozen[:, :, END] = 0.0
            step = torch.where(done.unsqueeze(-1), frozen, step)
            total = (scores.unsqueeze(-1) + step).view(b, k * vocab)
            scores, flat = total.topk(k, dim=-1)
            origin, words = flat // vocab, flat % vocab
            seqs = torch.cat([torch.gather(seqs, 1, origin.unsqueeze(-1).expand(-1, -1, seqs.shape[2])), words.unsqueeze(-1)], dim=2)
            rows = (origin + torch.arange(b, device=features.device).unsqueeze(1) * k).view(-1)
            h, c = h[:, rows], c[:, rows]
            done = torch.gather(done, 1, origin) | (words == END)
        return _trim(seqs[:, 0])  # topk keeps each image's beams sorted: the first is the best


def _trim(seqs: torch.Tensor) -> list[list[int]]:
    out = []
    for row in seqs.tolist():
        words = []
        for w in row:
            if w == END:
                break
            words.append(w)
        out.append(words)
    return out
