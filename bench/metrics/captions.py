"""Caption metrics as coco-caption computes them: the Stanford PTB tokenizer (lower-cased,
punctuation tokens removed) on references and candidates, then pycocoevalcap's BLEU-1..4
(corpus level, closest reference length), METEOR 1.5, ROUGE-L and CIDEr scorers, called one by
one (its all-in-one evaluate would start SPICE, which needs a download and fails on current Java).
Scores are reported in percent, as the paper's tables print them.

The tokenizer and METEOR run on Java. Without Java, a pure-Python tokenizer stands in (equal to
the PTB tokenizer on plain captions: a test shows it on the fixtures) and METEOR is reported as
unavailable; the result says which tokenizer was used, so a number is never silently different.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Hashable

from bench.errors import BenchError

# coco-caption's punctuation tokens, removed after tokenizing (pycocoevalcap tokenizer/ptbtokenizer.py)
PUNCTUATIONS = ("''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";")
PTB_JAR = "stanford-corenlp-3.4.1.jar"
METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")


def _package_dir() -> Path:
    try:
        import pycocoevalcap.bleu.bleu as bleu
    except ImportError:
        raise BenchError("caption metrics need pycocoevalcap, which is not installed", "pip install pycocoevalcap") from None
    return Path(bleu.__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def java_available() -> bool:
    java = shutil.which("java")
    if java is None:
        return False
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _flatten(captions: dict[Hashable, list[str]]) -> tuple[list[Hashable], list[str]]:
    keys = [k for k, v in captions.items() for _ in v]
    # one caption per line: any line break inside a caption would shift every later line
    sentences = [re.sub(r"[\r\n\u2028\u2029\x0b\x0c\x85]", " ", c) for v in captions.values() for c in v]
    return keys, sentences


def _regroup(keys: list[Hashable], lines: list[str]) -> dict[Hashable, list[str]]:
    out: dict[Hashable, list[str]] = {}
    for k, line in zip(keys, lines):
        out.setdefault(k, []).append(" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS))
    return out


def ptb_tokenize(captions: dict[Hashable, list[str]]) -> dict[Hashable, list[str]]:
    """coco-caption's tokenization: Stanford PTBTokenizer (-preserveLines -lowerCase) from
    pycocoevalcap's jar, punctuation tokens removed. The sentences go through a file in a
    temporary folder (pycocoevalcap's wrapper writes into its package folder, which may be read-only)."""
    if not java_available():
        raise BenchError("the PTB tokenizer needs Java, which is not on PATH", "install a Java runtime (apt-get install default-jre-headless), or score with the pure-Python tokenizer")
    keys, sentences = _flatten(captions)
    digest = hashlib.sha256("\n".join(sentences).encode()).hexdigest()
    if digest in _PTB_CACHE:  # the same references again (every backbone of a grid is scored against them)
        return _regroup(keys, _PTB_CACHE[digest])
    jar = _package_dir() / "tokenizer" / PTB_JAR
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "captions.txt"
        path.write_text("\n".join(sentences), encoding="utf-8")
        done = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", str(path)],
                              capture_output=True, timeout=3600)
    if done.returncode != 0:
        raise BenchError(f"the PTB tokenizer failed ({done.stderr.decode(errors='replace').strip().splitlines()[-1:] or 'no message'})", "check the Java runtime")
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(sentences):
        raise BenchError(f"the PTB tokenizer returned {len(lines)} lines for {len(sentences)} captions", "report this as a bench bug, with the captions")
    if len(_PTB_CACHE) >= 4:
        _PTB_CACHE.pop(next(iter(_PTB_CACHE)))
    _PTB_CACHE[digest] = lines[:len(sentences)]
    return _regroup(keys, lines)


_PTB_CACHE: dict[str, list[str]] = {}


_CONTRACTIONS = re.compile(r"(?i)\b(\w+)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na"}  # PTB splits these
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}  # lower-cased, so kept (coco-caption's list is upper case)
_ABBREVIATION = re.compile(r"^(?:(?:[a-z]\.)+|st\.|mr\.|mrs\.|ms\.|dr\.|jr\.|sr\.|mt\.|ft\.|vs\.)$")  # u.s., st. keep their dots


def _python_line(text: str) -> str:
    s = text.lower().replace("...", " \x00 ")
    s = "".join(f" {_BRACKETS[c]} " if c in _BRACKETS else c for c in s)
    s = re.sub(r"[,;:!?\"`]", lambda m: f" {m.group(0)} ", s)
    s = re.sub(r"(?<![\w'])'(?!n'(?!\w))|(?<![\w']n)'(?!\w)", " ' ", s)  # quotes, not 'n' or contractions
    s = re.sub(r"(?<=\s)-+(?=\s)|^-+(?=\s)|(?<=\s)-+$", lambda m: f" {m.group(0)} ", s)
    s = _CONTRACTIONS.sub(lambda m: f"{m.group(1)} {m.group(2)}", s)
    tokens = []
    for token in s.split():
        if token.endswith(".") and len(token) > 1 and not _ABBREVIATION.match(token):
            tokens += [token[:-1], "."]  # a word's full stop, not the dot inside 3.5 or u.s.
        else:
            tokens.append(token)
    tokens = [w for t in tokens for w in _SPLIT_WORDS.get(t, t).split()]
    return " ".join(t for t in tokens if t not in ("\x00", '"'))  # PTB's `` and '' for double quotes are removed


def python_tokenize(captions: dict[Hashable, list[str]]) -> dict[Hashable, list[str]]:
    """A Java-free stand-in for the PTB tokenizer as coco-caption runs it: lower case,
    punctuation split off and removed, brackets kept as -lrb- / -rrb- (coco-caption removes only
    their upper-case forms, which -lowerCase never leaves), contractions and cannot / gonna split."""
    keys, sentences = _flatten(captions)
    return _regroup(keys, [_python_line(s) for s in sentences])


def caption_metrics(references: dict[int, list[str]], candidates: dict[int, str], java: bool | None = None, meteor: bool = True) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Corpus metrics (percent) of one candidate per image against its references, over the
    images of `candidates`; and what else a record keeps: the tokenizer, per-image CIDEr and BLEU-4."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    missing = [i for i in candidates if i not in references]
    if missing:
        raise BenchError(f"{len(missing)} captioned image(s) have no references (e.g. image {missing[0]})", "score against the annotations of the same split")
    use_java = java_available() if java is None else java
    tokenize = ptb_tokenize if use_java else python_tokenize
    ids = sorted(candidates)
    gts = tokenize({i: references[i] for i in ids})
    res = tokenize({i: [candidates[i]] for i in ids})
    with contextlib.redirect_stdout(io.StringIO()):  # the BLEU scorer prints its counts
        bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    meteor_value = meteor_score(gts, res) if use_java and meteor else None
    metrics: dict[str, float | None] = {f"bleu_{n + 1}": 100.0 * float(b) for n, b in enumerate(bleu)}
    metrics.update(meteor=None if meteor_value is None else 100.0 * meteor_value, rouge_l=100.0 * float(rouge), cider=100.0 * float(cider))
    info = {
        "tokenizer": "ptb (Stanford PTBTokenizer 3.4.1, coco-caption's)" if use_java else "python (PTB stand-in: Java not found)",
        "meteor_status": ("METEOR 1.5" if meteor else "not computed (meteor=false)") if use_java else "unavailable: needs Java",
        "images": len(ids),
        "per_image": {i: {"bleu_4": 100.0 * float(b4), "cider": 100.0 * float(c)} for i, b4, c in zip(ids, bleu_per_image[3], cider_per_image)},
        # what bench check resamples: corpus BLEU's counts per image, and the per-image ROUGE-L and CIDEr (CIDEr's
        # document frequencies come from the whole set's references and stay fixed under resampling)
        "statistics": {i: {"bleu_stats": s, "rouge_l_image": float(r), "cider_image": float(c)}
                       for i, s, r, c in zip(ids, bleu_statistics(gts, res), rouge_per_image, cider_per_image)},
    }
    return metrics, info


def bleu_statistics(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]) -> list[list[int]]:
    """Per image (in gts' order, as pycocoevalcap's Bleu scores them), the sufficient statistics of
    corpus BLEU as pycocoevalcap's BleuScorer counts them: [test length, closest reference length,
    guessed 1..4-grams, clipped matching 1..4-grams]. Corpus BLEU-n is a function of their sums
    (bench.stats.replicates.bleu)."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=4)
    for i in gts:
        scorer += (res[i][0], gts[i])
    out = []
    for comps in scorer.ctest:
        testlen = comps["testlen"]
        reflen = scorer._single_reflen(comps["reflen"], "closest", testlen)
        out.append([int(testlen), int(reflen), *map(int, comps["guess"]), *map(int, comps["correct"])])
    return out


def meteor_score(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]) -> float:
    """pycocoevalcap's METEOR 1.5 scorer (one Java process), stopped once it has answered."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
    finally:
        with contextlib.suppress(Exception):
            scorer.meteor_p.stdin.close()
            scorer.meteor_p.kill()
            scorer.meteor_p.wait()
    return float(score)
