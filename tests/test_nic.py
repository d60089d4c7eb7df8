"""The NIC decoder: beam search against exhaustive search, batched against one image at a time,
beam 1 against greedy; the vocabulary's rules."""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.captioning.model import NIC, NICOptions
from bench.captioning.vocab import END, Vocabulary, tokens
from bench.errors import BenchError


def _model(vocab: int = 6, seed: int = 0) -> NIC:
    torch.manual_seed(seed)
    model = NIC(feature_dim=8, vocab_size=vocab, embed=5, hidden=7, dropout=0.0).eval()
    with torch.no_grad():
        model.out.weight.mul_(4)  # peakier distributions: the best caption is not the greedy one
    return model


def _score(model: NIC, feature: torch.Tensor, seq: tuple[int, ...]) -> float:
    """The sum of the sequence's log-probabilities, one LSTM call per prefix."""
    logp, state = model._start(feature[None])
    score = float(logp[0, seq[0]])
    for prev, word in zip(seq, seq[1:]):
        out, state = model.lstm(model.word(torch.tensor([[prev]])), state)
        score += float(torch.log_softmax(model.out(out[:, -1]), -1)[0, word])
    return score


def _exhaustive(model: NIC, feature: torch.Tensor, max_length: int) -> list[int]:
    """Every token sequence of at most max_length tokens (<end> included, as the paper's NIC code
    predicts max_length tokens in all) that ends at <end> or at the limit, scored by the sum of
    its log-probabilities, one LSTM call per prefix."""
    vocab = model.out.out_features
    best, best_score = None, float("-inf")
    for n in range(1, max_length + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if END in seq[:-1] or (n < max_length and seq[-1] != END):
                continue
            score = _score(model, feature, seq)
            if score > best_score:
                best, best_score = list(seq), score
    return [w for w in best if w != END]


def test_beam_search_finds_the_best_caption_when_the_beam_holds_everything():
    model = _model()
    features = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        found = model.beam_search(features, beam=6 ** 3, max_length=3)
        for k in range(4):
            assert found[k] == _exhaustive(model, features[k], max_length=3), k


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
            while seq[-1] != END and len(seq) < 6:
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


def _no_end(model: NIC) -> NIC:
    with torch.no_grad():
        model.out.bias[END] = -1e4  # <end> never wins: every caption runs to the limit
    return model


@pytest.mark.parametrize("beam,end", [(1, "stop"), (3, "stop"), (3, "ignore"), (5, "ignore")])
def test_a_caption_that_never_ends_has_max_length_words(beam, end):
    """The first word comes from the start state; max_length - 1 steps follow, so max_length
    words in all (the paper's NIC code predicts seq_max_len = 20 tokens), never one more."""
    model = _no_end(_model(vocab=10, seed=4))
    features = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    for max_length in (1, 2, 5, 20):
        found = model.beam_search(features, beam=beam, max_length=max_length, end=end)
        assert [len(c) for c in found] == [max_length] * 3, (beam, end, max_length)


def _every_sequence(model: NIC, feature: torch.Tensor, max_length: int) -> list[int]:
    """The paper code's beam search with a beam that holds everything: every sequence of exactly
    max_length tokens, <end> a token like any other, ranked by the sum of all its log-probabilities;
    the caption is the best sequence cut at its first <end>."""
    vocab = model.out.out_features
    best, best_score = None, float("-inf")
    for seq in itertools.product(range(vocab), repeat=max_length):
        score = _score(model, feature, seq)
        if score > best_score:
            best, best_score = list(seq), score
    return best[:best.index(END)] if END in best else best


def test_beam_end_ignore_is_the_paper_codes_search():
    model = _model(seed=6)
    features = torch.randn(4, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        found = model.beam_search(features, beam=6 ** 3, max_length=3, end="ignore")
        stopped = model.beam_search(features, beam=6 ** 3, max_length=3, end="stop")
        assert found == [_every_sequence(model, features[k], 3) for k in range(4)]
        assert stopped == [_exhaustive(model, features[k], 3) for k in range(4)]
    assert found != stopped  # the two rankings disagree here: the test tells them apart


def test_the_paper_codes_model_choices():
    torch.manual_seed(0)
    code = NIC(2048, 5000, 100, 300, 0.1, NICOptions("linear_bn", "paper_code", "output"))
    linear, bn = code.image[0], code.image[1]
    assert isinstance(bn, torch.nn.BatchNorm1d) and bn.momentum == 0.01 and bn.num_features == 100
    assert abs(float(linear.weight.detach().std()) - 0.02) < 0.001 and float(linear.bias.detach().abs().max()) == 0.0
    for w in (code.word.weight[1:], code.out.weight):
        assert float(w.min()) >= -0.1 and float(w.max()) <= 0.1 and float(w.abs().max()) > 0.099
    assert float(code.out.bias.abs().max()) == 0.0 and float(code.word.weight[0].abs().max()) == 0.0
    plain = NIC(2048, 5000, 100, 300, 0.1, NICOptions("linear", "pytorch", "input_output"))
    assert len(plain.image) == 1 and float(plain.out.weight.abs().max()) < 1 / 300 ** 0.5 + 1e-6  # PyTorch's U(-1/sqrt(in), 1/sqrt(in))


@pytest.mark.parametrize("where,dropped_input", [("output", False), ("input_output", True)])
def test_dropout_placement(where, dropped_input):
    torch.manual_seed(1)
    model = NIC(8, 10, 6, 7, 0.5, NICOptions("linear", "pytorch", where)).train()
    seen = []
    model.lstm.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    features, caps = torch.randn(4, 8), torch.tensor([[1, 5, 6, END]] * 4)
    model(features, caps)
    clean = torch.cat([model.image(features).unsqueeze(1), model.word(caps[:, :-1])], dim=1)
    assert torch.equal(seen[0], clean) is not dropped_input
    assert bool((seen[0] == 0).any()) is dropped_input or not dropped_input


def test_caption_loss_normalisations():
    """tokens: mean over non-pad targets; positions: the paper code's mean(CE * mask) over B x T_max."""
    from bench.captioning.train import caption_loss
    from bench.captioning.vocab import PAD

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, 9, generator=g)
    targets = torch.tensor([[4, 5, 6, 7, END], [4, END, PAD, PAD, PAD], [8, 4, END, PAD, PAD]])
    mask = (targets != PAD).float()
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 9), targets.reshape(-1), reduction="none").view(3, 5)
    torch.testing.assert_close(caption_loss(logits, targets, "positions"), (ce * mask).mean())
    torch.testing.assert_close(caption_loss(logits, targets, "tokens"), (ce * mask).sum() / 10)


def test_nltk_tokens_are_the_paper_codes():
    """The paper's code: nltk.tokenize.word_tokenize(caption.lower()), punctuation kept."""
    assert tokens("A man riding a wave on top of a surfboard.", "nltk") == ["a", "man", "riding", "a", "wave", "on", "top", "of", "a", "surfboard", "."]
    assert tokens("A dog's toy, isn't it?", "nltk") == ["a", "dog", "'s", "toy", ",", "is", "n't", "it", "?"]
    assert tokens("A man riding a wave on top of a surfboard.", "ptb")[-1] == "surfboard"
