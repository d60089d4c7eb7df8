"""The NIC decoder: beam search against exhaustive search, batched against one image at a time,
beam 1 against greedy; the vocabulary's rules."""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.captioning.model import NIC
from bench.captioning.vocab import END, Vocabulary, tokens
from bench.errors import BenchError


def _model(vocab: int = 6, seed: int = 0) -> NIC:
    torch.manual_seed(seed)
    model = NIC(feature_dim=8, vocab_size=vocab, embed=5, hidden=7, dropout=0.0).eval()
    with torch.no_grad():
        model.out.weight.mul_(4)  # peakier distributions: the best caption is not the greedy one
    return model


def _exhaustive(model: NIC, feature: torch.Tensor, max_length: int) -> list[int]:
    """Every token sequence of up to max_length + 1 steps (ending at <end> or cut at the limit),
    scored by the sum of its log-probabilities, one LSTM call per prefix."""
    vocab = model.out.out_features
    best, best_score = None, float("-inf")
    for n in range(1, max_length + 2):
        for seq in itertools.product(range(vocab), repeat=n):
            if END in seq[:-1] or (n < max_length + 1 and seq[-1] != END):
                continue
            logp, state = model._start(feature[None])
            score = float(logp[0, seq[0]])
            for prev, word in zip(seq, seq[1:]):
                out, state = model.lstm(model.word(torch.tensor([[prev]])), state)
                score += float(torch.log_softmax(model.out(out[:, -1]), -1)[0, word])
            if score > best_score:
                best, best_score = list(seq), score
    return [w for w in best if w != END]


def test_beam_search_finds_the_best_caption_when_the_beam_holds_everything():
    model = _model()
    features = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        found = model.beam_search(features, beam=6 ** 3, max_length=2)
        for k in range(4):
            assert found[k] == _exhaustive(model, features[k], max_length=2), k


def test_batched_beam_search_equals_one_image_at_a_time_and_beam_1_is_greedy():
    model = _model(vocab=12, seed=3)
    features = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    batched = model.beam_search(features, beam=4, max_length=6)
    assert batched == [model.beam_search(features[k:k + 1], beam=4, max_length=6)[0] for k in range(5)]
    assert model.beam_search(features, beam=1, max_length=6) == model.greedy(features, max_length=6)
    greedy = []
    with torch.no_grad():  # greedy by hand: the argmax at every step
        for k in range(5):
            logp, state = model._start(features[k:k + 1])
            seq = [int(logp.argmax())]
            while seq[-1] != END and len(seq) < 7:
                out, state = model.lstm(model.word(torch.tensor([[seq[-1]]])), state)
                seq.append(int(torch.log_softmax(model.out(out[:, -1]), -1).argmax()))
            greedy.append([w for w in seq if w != END])
    assert model.greedy(features, max_length=6) == greedy


def test_training_logits_line_up_with_decoding():
    """forward()'s logit at position t is what decoding sees after the image, <start> and the first t words."""
    model = _model(vocab=9)
    features = torch.randn(1, 8)
    caption = torch.tensor([[1, 5, 6, 7, END]])
    with torch.no_grad():
        logits = model(features, caption)
        logp, state = model._start(features)
        torch.testing.assert_close(torch.log_softmax(logits[0, 0], -1), logp[0])
        out, _ = model.lstm(model.word(torch.tensor([[5]])), state)
        torch.testing.assert_close(logits[0, 1], model.out(out[0, -1]))


def test_vocabulary():
    captions = [tokens("A dog runs."), tokens("A dog sits!"), tokens("The cat's toy")]
    assert captions[2] == ["the", "cat", "'s", "toy"]
    vocab = Vocabulary.build(captions, min_count=2)
    assert vocab.words[4:] == ("a", "dog")
    ids = vocab.encode(["a", "dog", "barks"], max_length=2)
    assert ids == [1, 4, 5, END] and vocab.decode(ids[1:]) == "a dog"
    assert vocab.encode(["a", "bird"], max_length=5) == [1, 4, 3, END]
    with pytest.raises(BenchError, match="the vocabulary would be empty"):
        Vocabulary.build(captions, min_count=10)
