"""NIC (Show and Tell, Vinyals et al. 2015): the image's pooled feature, embedded, is fed to a
one-layer LSTM once, before the <start> token (t = -1); then the words. Trained with per-word
cross-entropy; captions come from greedy decoding or beam search (the paper's beam 20), batched
over images on the device. A beam's score is the sum of its words' log-probabilities (no length
normalisation, as Show and Tell). A caption has at most `max_length` words: the first word plus
`max_length - 1` further steps, as the paper's NIC code predicts `seq_max_len` (20) tokens in all.

The paper's NIC code (its models/nic.py) is selectable choice by choice (`NICOptions`): the image
embedding Linear + BatchNorm1d(momentum 0.01), its initialisation, dropout on the LSTM output only,
and its beam search, which runs every step without treating <end> as special.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.captioning.vocab import END, PAD, START


@dataclass(frozen=True)
class NICOptions:
    image_embed: str = "linear_bn"  # "linear": a linear layer only; "linear_bn": + BatchNorm1d(embed, momentum=0.01), as the paper's code
    init: str = "paper_code"  # "paper_code": N(0, 0.02) image linear, U(-0.1, 0.1) word embedding and output, zero biases; "pytorch": its defaults
    dropout_at: str = "output"  # "output": the LSTM's output only, as the paper's code; "input_output": its input (image, words) and output


class NIC(nn.Module):
    def __init__(self, feature_dim: int, vocab_size: int, embed: int = 100, hidden: int = 300, dropout: float = 0.1,
                 options: NICOptions = NICOptions()):
        super().__init__()
        self.options = options
        linear = nn.Linear(feature_dim, embed)
        self.image = nn.Sequential(linear, nn.BatchNorm1d(embed, momentum=0.01)) if options.image_embed == "linear_bn" else nn.Sequential(linear)
        self.word = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, num_layers=1, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)
        if options.init == "paper_code":
            with torch.no_grad():
                linear.weight.normal_(0.0, 0.02)
                linear.bias.zero_()
                self.word.weight.uniform_(-0.1, 0.1)
                self.word.weight[PAD].zero_()  # the pad row never reaches a scored position; kept at zero as padding_idx wants
                self.out.weight.uniform_(-0.1, 0.1)
                self.out.bias.zero_()

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x) if self.options.dropout_at == "input_output" else x

    def forward(self, features: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """Logits (B, T - 1, V) for captions[:, 1:] given the image and captions[:, :-1]
        (captions: <start> w1 .. wn <end> <pad> ..., shape (B, T))."""
        steps = torch.cat([self.image(features).unsqueeze(1), self.word(captions[:, :-1])], dim=1)
        hidden, _ = self.lstm(self._in(steps))
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
        for _ in range(max_length - 1):  # the first word is already out: max_length words in all
            if bool(done.all()):
                break
            out, state = self.lstm(self.word(words.unsqueeze(1)), state)
            words = torch.where(done, torch.full_like(words, END), torch.log_softmax(self.out(out[:, -1]), -1).argmax(-1))
            seqs.append(words)
            done = done | (words == END)
        return _trim(torch.stack(seqs, 1))

    @torch.no_grad()
    def beam_search(self, features: torch.Tensor, beam: int, max_length: int, end: str = "stop") -> list[list[int]]:
        """The highest-scoring caption of each image (word ids, without <start> and <end>), all
        images' beams advanced together: (B * beam) rows through the LSTM per step.

        end="stop": a beam that has emitted <end> is finished and keeps its score; the search stops
        when every beam is. end="ignore" (the paper's NIC code): <end> is a word like any other,
        every beam runs all max_length steps, and the caption with the highest sum of all its
        log-probabilities, those after <end> included, is cut at its first <end>."""
        if beam == 1:
            return self.greedy(features, max_length)
        b = features.shape[0]
        logp, (h, c) = self._start(features)  # (B, V)
        vocab = logp.shape[-1]
        scores, words = logp.topk(min(beam, vocab), dim=-1)  # (B, K)
        k = scores.shape[1]
        seqs = words.unsqueeze(-1)  # (B, K, 1)
        h, c = (s.repeat_interleave(k, dim=1) for s in (h, c))  # (1, B*K, H)
        stop = end == "stop"
        done = (words == END) if stop else torch.zeros_like(words, dtype=torch.bool)
        for _ in range(max_length - 1):  # the first word is already out: max_length words in all
            if bool(done.all()):
                break
            out, (h, c) = self.lstm(self.word(seqs[:, :, -1].reshape(-1, 1)), (h, c))
            step = torch.log_softmax(self.out(out[:, -1]), -1).view(b, k, vocab)
            if stop:  # a finished beam continues only with <end>, at no cost: its score stays
                frozen = torch.full_like(step, float("-inf"))
                frozen[:, :, END] = 0.0
                step = torch.where(done.unsqueeze(-1), frozen, step)
            total = (scores.unsqueeze(-1) + step).view(b, k * vocab)
            scores, flat = total.topk(k, dim=-1)
            origin, words = flat // vocab, flat % vocab
            seqs = torch.cat([torch.gather(seqs, 1, origin.unsqueeze(-1).expand(-1, -1, seqs.shape[2])), words.unsqueeze(-1)], dim=2)
            rows = (origin + torch.arange(b, device=features.device).unsqueeze(1) * k).view(-1)
            h, c = h[:, rows], c[:, rows]
            if stop:
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
