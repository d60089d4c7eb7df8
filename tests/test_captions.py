"""Caption metrics: `bench score captions` equals pycocoevalcap's own tokenizer and scorers called
directly (to 1e-9); the Java-free tokenizer equals the PTB tokenizer on the fixture captions; bad
annotation and results files are one line each."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from bench.metrics.captions import java_available, ptb_tokenize, python_tokenize

needs_java = pytest.mark.skipif(not java_available(), reason="the PTB tokenizer and METEOR need Java (.ci/run installs it)")

REFERENCES = {
    1: ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean!", "Man on a surfboard, riding a big wave.",
        "A person surfing on a blue wave", "The surfer's board cuts through the water."],
    2: ["Two dogs play in the grass, near a tree.", "A pair of dogs running on a lawn.", "Dogs playing together in a green field",
        "Two brown dogs chase each other outside.", "There's two dogs in the grass; one has a ball."],
    3: ["A red and white bus parked on a street.", "The bus is red and white.", "A double-decker bus waits at the curb",
        "A city bus stopped next to a sidewalk.", "Red bus on the road (with people)."],
    4: ["A cat sleeping on a couch.", "A grey cat curled up on the sofa!", "The cat isn't awake: it's sleeping on the couch.",
        "A kitten asleep on a cushion", "A cat lies on a brown sofa."],
    5: ["A plate of food with broccoli and rice.", "Food on a white plate...", "Rice, broccoli and chicken on a dish",
        "A dinner plate with vegetables", "A healthy meal: rice and greens."],
}
CANDIDATES = {1: "a man riding a wave on a surfboard", 2: "two dogs playing in the grass", 3: "a red bus parked on the street",
              4: "a cat sleeping on a couch", 5: "a plate of food with rice"}


def write_fixture(folder: Path, refs=REFERENCES, cands=CANDIDATES) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "height": 64, "width": 64} for i in refs]
    anns = [{"id": 100 * i + k, "image_id": i, "caption": c} for i, cs in refs.items() for k, c in enumerate(cs)]
    (folder / "captions_val2014.json").write_text(json.dumps({"info": {}, "images": images, "annotations": anns}))
    (folder / "results.json").write_text(json.dumps([{"image_id": i, "caption": c} for i, c in cands.items()]))
    return folder / "results.json", folder / "captions_val2014.json"


@needs_java
def test_scores_equal_pycocoevalcap_called_directly(run_bench, tmp_path):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    results, annotations = write_fixture(tmp_path)
    code, out, err = run_bench("score", "captions", "--results", results, "--annotations", annotations)
    assert code == 0, err
    ours = json.loads(out)
    # the reference: coco-caption's own pipeline (COCOEvalCap.evaluate without SPICE), in its units
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in cs] for i, cs in REFERENCES.items()})
    res = tok.tokenize({i: [{"caption": c}] for i, c in CANDIDATES.items()})
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    meteor = Meteor()
    ref = {**{f"bleu_{n + 1}": b for n, b in enumerate(bleu)}, "meteor": meteor.compute_score(gts, res)[0],
           "rouge_l": Rouge().compute_score(gts, res)[0], "cider": Cider().compute_score(gts, res)[0]}
    meteor.meteor_p.kill()
    for name, value in ref.items():
        assert ours[name] == pytest.approx(100 * value, abs=1e-9), name
    assert 0 < ours["bleu_4"] < 100 and 0 < ours["cider"] and ours["images"] == 5 and ours["tokenizer"].startswith("ptb")


@needs_java
def test_the_java_free_tokenizer_equals_ptb_on_the_fixtures():
    edge = ["Food on a white plate...", "Wait... what", "A (big) [red] {x} dog.", 'He said "hi" to me', "It is 3.5 m tall.", "a dog -- running",
            "well-known place", "U.S. army man", "the dog's bone", "dogs' bones", "rock 'n' roll", "cannot", "gonna go", "Don't stop",
            "a 'quoted' word", "St. Louis street", "a man at 5 p.m.", "Is it?"]
    everything = {**{f"r{i}": cs for i, cs in REFERENCES.items()}, **{f"c{i}": [c] for i, c in CANDIDATES.items()}, "edge": edge}
    assert python_tokenize(everything) == ptb_tokenize(everything)


def test_without_java_meteor_is_unavailable_and_said(run_bench, tmp_path, monkeypatch):
    import bench.metrics.captions as captions

    monkeypatch.setattr(captions, "java_available", lambda: False)
    results, annotations = write_fixture(tmp_path)
    code, out, err = run_bench("score", "captions", "--results", results, "--annotations", annotations)
    assert code == 0, err
    scores = json.loads(out)
    assert scores["meteor"] is None and scores["meteor_status"] == "unavailable: needs Java"
    assert scores["tokenizer"] == "python (PTB stand-in: Java not found)"
    if java_available.__wrapped__():  # the same tokens, so the same BLEU, ROUGE-L and CIDEr as with Java
        monkeypatch.undo()
        with_java = json.loads(run_bench("score", "captions", "--results", results, "--annotations", annotations)[1])
        for name in ("bleu_1", "bleu_4", "rouge_l", "cider"):
            assert scores[name] == pytest.approx(with_java[name], abs=1e-9), name


@pytest.mark.parametrize("break_it, message", [
    (lambda a, r: a.write_text("{not json"), "is not valid JSON"),
    (lambda a, r: a.write_text(json.dumps({"images": []})), "lacks its 'images' and 'annotations' lists"),
    (lambda a, r: _edit(a, lambda d: d["annotations"].append({"id": 9, "image_id": 77, "caption": "x"})), "annotations[25] is for image 77, which 'images' does not list"),
    (lambda a, r: _edit(a, lambda d: d["images"].append({"id": 6, "file_name": "b.jpg"})), "1 image(s) have no caption (e.g. image 6)"),
    (lambda a, r: _edit(a, lambda d: d["annotations"][3].update(caption="  ")), "annotations[3] (image 1) has an empty caption"),
    (lambda a, r: r.write_text(json.dumps([{"image_id": 1, "caption": "a"}, {"image_id": 42, "caption": "b"}])), "entry 1 is for image 42, which the annotations do not list"),
    (lambda a, r: r.write_text(json.dumps([{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}])), "image 1 has two captions"),
    (lambda a, r: r.write_text(json.dumps({"1": "a"})), "is not a JSON list"),
])
def test_bad_files_are_one_line(run_bench, tmp_path, break_it, message):
    results, annotations = write_fixture(tmp_path)
    break_it(annotations, results)
    code, out, err = run_bench("score", "captions", "--results", results, "--annotations", annotations)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, err


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_mini_coco_is_in_the_real_layout_and_tells_captioners_apart(tmp_path):
    """The mini generator's COCO: images and captions_*.json in COCO 2014's layout, five varied
    references per scene; a caption with the right digit and place scores well above one without."""
    from bench.data.coco import read_captions
    from bench.metrics.captions import caption_metrics
    from bench.mini.build import MiniSpec, ensure_data
    from bench.mini.captions import WORDS, where
    from bench.mini.digits import make_scenes

    spec = MiniSpec(seed=1, train=30, val=20, datasets=("coco",))
    root = ensure_data(tmp_path, spec) / "coco"
    for split, n in (("train2014", 30), ("val2014", 20)):
        refs = read_captions(root / "annotations" / f"captions_{split}.json")
        assert len(refs.captions) == n and all(len(c) == 5 and len(set(c)) == 5 for c in refs.captions.values())
        assert all((root / split / name).is_file() for name in refs.files.values())
    val = make_scenes("val", 20, spec.seed)
    refs = read_captions(root / "annotations" / "captions_val2014.json")
    ids = sorted(refs.captions)
    h, w = val.images.shape[1:3]
    right = {i: f"a handwritten {WORDS[int(val.labels[k])]} in the {where(tuple(val.boxes[k]), w, h)} of the image" for k, i in enumerate(ids)}
    wrong = {i: f"a handwritten {WORDS[(int(val.labels[k]) + 1) % 10]} in the {'center' if where(tuple(val.boxes[k]), w, h) != 'center' else 'top'} of the image"
             for k, i in enumerate(ids)}
    good, _ = caption_metrics(refs.captions, right)
    bad, _ = caption_metrics(refs.captions, wrong)
    assert good["bleu_4"] > bad["bleu_4"] + 10 and good["cider"] > bad["cider"] + 50, (good, bad)
    # the references differ in wording: one against the other four is neither a copy nor unrelated
    first, _ = caption_metrics({i: c[1:] for i, c in refs.captions.items()}, {i: c[0] for i, c in refs.captions.items()})
    assert 0 < first["bleu_4"] < 100
