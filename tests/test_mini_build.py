"""The mini benchmark's data (read back through the real readers), its resumable, deterministic
training, and its four checkpoints loading through the official-format loader."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.backbones.build import load_backbone
from bench.cards import find_card
from bench.data.imagenet import read_imagenet_train, read_imagenet_val, read_val_boxes
from bench.mini.build import WNIDS, MiniSpec, ensure_data, ensure_zoo, weights_file
from bench.mini.digits import make_scenes
from bench.mini.model import mini_resnet
from bench.mini.recipes import RECIPES
from bench.mini.train import TrainConfig, to_tensor, train

SMALL = MiniSpec(seed=0, train=120, val=40, epochs=1)


def test_scenes_are_deterministic_and_boxed():
    a, b = make_scenes("val", 20, seed=3), make_scenes("val", 20, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels) and np.array_equal(a.boxes, b.boxes)
    assert a.images.shape == (20, 64, 64, 3) and set(a.labels) <= set(range(10))
    assert (a.boxes[:, 2] > a.boxes[:, 0]).all() and (a.boxes[:, 3] > a.boxes[:, 1]).all() and a.boxes.max() < 64
    assert not np.array_equal(make_scenes("val", 20, seed=4).images, a.images)
    # the box holds the digit: the ink is brighter inside it than the mean outside
    img, (x0, y0, x1, y1) = a.images[0].astype(float).mean(2), a.boxes[0]
    assert img[y0:y1 + 1, x0:x1 + 1].max() > img.mean() + 40


def test_data_is_in_the_real_layouts(mini_data):
    root = mini_data(SMALL) / "imagenet"
    val_scenes, train_scenes = make_scenes("val", SMALL.val, SMALL.seed), make_scenes("train", SMALL.train, SMALL.seed)
    val = read_imagenet_val(root, 10)
    assert val.classes == WNIDS and len(val.images) == SMALL.val
    by_name = {p.stem: WNIDS[t] for p, t in zip(val.images, val.targets)}
    assert by_name == {f"ILSVRC2012_val_{n:08d}": WNIDS[label] for n, label in enumerate(val_scenes.labels, start=1)}
    train_split = read_imagenet_train(root, 10)
    assert len(train_split.images) == SMALL.train
    assert sorted(np.bincount(train_split.targets, minlength=10)) == sorted(np.bincount(train_scenes.labels, minlength=10))
    boxes = read_val_boxes(root)
    assert len(boxes) == SMALL.val
    first = boxes["ILSVRC2012_val_00000001"]
    assert [(b.wnid, b.x0, b.y0, b.x1, b.y1) for b in first] == [(WNIDS[val_scenes.labels[0]], *(int(v) for v in val_scenes.boxes[0]))]


def test_new_seed_is_a_new_key_and_half_written_data_is_rebuilt(tmp_path):
    small = MiniSpec(seed=0, train=120, val=40, epochs=1, datasets=("imagenet",))  # the keys and the rebuild, not the writers
    a = ensure_data(tmp_path, small)
    b = ensure_data(tmp_path, MiniSpec(seed=1, train=120, val=40, datasets=("imagenet",)))
    assert a != b and (b / ".complete").is_file()
    (a / ".complete").unlink()
    victim = next((a / "imagenet" / "val").iterdir())
    for f in victim.iterdir():
        f.unlink()
    crashed = a.with_name(a.name + ".part-999999999")  # a build whose process is gone
    (crashed / "imagenet").mkdir(parents=True)
    assert ensure_data(tmp_path, small) == a
    assert len(read_imagenet_val(a / "imagenet", 10).images) == SMALL.val
    assert ensure_data(tmp_path, MiniSpec(seed=0, train=120, val=40, datasets=("imagenet", "cub"))) != a  # another set of writers, another key
    assert not crashed.exists()


def test_training_resumes_to_the_same_weights(tmp_path):
    scenes = make_scenes("train", 96, seed=0)
    cfg = TrainConfig("cutmix", epochs=3, batch_size=32)
    whole, _ = train(scenes.images, scenes.labels, cfg, tmp_path / "a.pt", progress=False)

    def stop(epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(scenes.images, scenes.labels, cfg, tmp_path / "b.pt", progress=False, on_epoch=stop)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1
    resumed, stats = train(scenes.images, scenes.labels, cfg, tmp_path / "b.pt", progress=False)
    for (k, v), w in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k
    assert len(stats["train_loss"]) == 3


def test_baseline_learns(tmp_path):
    torch.set_num_threads(1)
    train_s, val_s = make_scenes("train", 800, seed=0), make_scenes("val", 200, seed=0)
    model, _ = train(train_s.images, train_s.labels, TrainConfig("baseline", epochs=3, batch_size=32), tmp_path / "s.pt", progress=False)
    with torch.no_grad():
        err = (model(to_tensor(val_s.images)).argmax(1).numpy() != val_s.labels).mean()
    assert err < 0.6  # chance is 0.9


def test_zoo_is_deterministic_and_loads_through_the_official_loader(tmp_path, monkeypatch, mini_data):
    root = mini_data(SMALL)
    ensure_zoo(root, tmp_path / "w", SMALL, progress=False)
    digests = {r: hashlib.sha256(weights_file(r).read_bytes()).hexdigest() for r in RECIPES}
    x = torch.randn(2, 3, 64, 64)
    for r in RECIPES:
        loaded = load_backbone(find_card(f"mini_{r}"))
        assert loaded.report.format == "cutmix" and loaded.report.stripped_prefix == "module."
        raw = torch.load(weights_file(r), weights_only=True)
        assert set(raw) == {"epoch", "arch", "state_dict", "best_err1", "best_err5", "optimizer"}
        direct = mini_resnet(10)
        direct.load_state_dict({k.removeprefix("module."): v for k, v in raw["state_dict"].items()})
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x), direct.eval()(x), rtol=0, atol=0)
    # a cached zoo is reused as is
    ensure_zoo(root, tmp_path / "w", SMALL, progress=False)
    assert digests == {r: hashlib.sha256(weights_file(r).read_bytes()).hexdigest() for r in RECIPES}
    # the same seed in a fresh cache gives the same weights, bit for bit
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "other-cache"))
    threads = torch.get_num_threads()
    ensure_zoo(root, tmp_path / "w2", SMALL, progress=False, parallel=1)
    assert torch.get_num_threads() == threads  # training in this process leaves its thread count as it was
    assert digests == {r: hashlib.sha256(weights_file(r).read_bytes()).hexdigest() for r in RECIPES}


def test_read_only_cache_is_one_clear_error(tmp_path):
    if os.geteuid() == 0 and not __import__("shutil").which("setpriv"):
        pytest.skip("running as root without setpriv")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    env = {**os.environ, "BENCH_CACHE": str(ro)}
    try:
        out = subprocess.run([*prefix, sys.executable, "-m", "bench", "demo", "--output", str(tmp_path / "rep")], cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True, timeout=120)
    finally:
        ro.chmod(0o755)
    assert out.returncode == 2
    assert out.stderr.startswith("bench: error: demo folder") and "not writable" in out.stderr and "set BENCH_CACHE" in out.stderr


def test_ctrl_c_during_training_then_the_next_run_resumes(tmp_path):
    """`bench demo` interrupted right after its first training epoch is saved (a deterministic point,
    not a poll), then the zoo alone is built again: it resumes from that epoch."""
    import json
    import signal

    from interrupt_point import run_to_point

    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache")}
    repo = Path(__file__).parent.parent
    proc = run_to_point(["demo", "--output", tmp_path / "rep", "--train-scenes", "300", "--val-scenes", "40", "--epochs", "3"],
                        "bench.mini.train:save_atomic", options=("--serial-zoo",), env=env, cwd=repo)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    # stderr: the demo's stage lines, then the one interrupt message and nothing else
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and lines[-1] == "bench: interrupted; nothing was stored for the unfinished cell", err
    assert all(line.startswith("bench demo: [") for line in lines[:-1]) and "training:" in lines[-2], err
    assert not list((tmp_path / "cache" / "weights").glob("mini_*/model_best.pth.tar"))
    done = subprocess.run([sys.executable, "tests/interrupt_point.py", "--", "zoo", str(tmp_path / "cache" / "mini"), "300", "40", "3"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    metas = json.loads(done.stdout)
    assert len(metas) == 4 and all(len(m["train_loss"]) == 3 for m in metas.values())
    assert [m["resumed_from_epoch"] for m in metas.values()] == [1, 0, 0, 0]


def test_cub_layout_reads_back(mini_data):
    from bench.data.cub import read_cub

    root = mini_data(SMALL) / "CUB_200_2011"
    train_s, val_s = make_scenes("train", SMALL.train, SMALL.seed), make_scenes("val", SMALL.val, SMALL.seed)
    test = read_cub(root, "test")
    assert len(test.images) == SMALL.val and test.classes[3] == "004.Digit_3"
    assert test.targets == list(val_s.labels)
    assert test.boxes == [tuple(float(v) for v in b) for b in val_s.boxes]  # x1 = x + width: the inclusive x1
    assert read_cub(root, "train").targets == list(train_s.labels)
