"""Shared fixtures: tiny ImageNet-layout val sets and checkpoints written in the official formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from bench.mini.layouts import write_imagenet_val

NUM_CLASSES = 12
WNIDS = [f"n0{1440764 + 17 * i:07d}" for i in range(NUM_CLASSES)]


def pytest_configure(config):
    """Under pytest-xdist each worker computes on one thread (and so do the bench processes it
    starts): two workers on two cores, instead of four OpenMP threads spinning for two cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the user's data, cache, hub downloads or results (nor ./results: the working
    directory is the test's own), and no test leaves torch's thread count changed for the next."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for var in ("BENCH_DATA", "BENCH_RESULTS", "BENCH_CARDS", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory):
    """mini_data(spec) -> a mini data root built once per test session for that spec, and shared
    by pytest-xdist's workers (ensure_data's lock lets one build while the others wait). Read it,
    never change it: a test that damages data copies the files it damages."""
    from bench.mini.build import ensure_data

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mini-shared"

    def get(spec) -> Path:
        return ensure_data(shared, spec)

    return get


def random_images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(40 + int(rng.integers(0, 24)), 40 + int(rng.integers(0, 24))) for _ in range(n)]
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def make_val(root: Path, layout: str = "class_folders", per_class: int = 2, seed: int = 0) -> Path:
    labels = [c for c in range(NUM_CLASSES) for _ in range(per_class)]
    labels = list(np.random.default_rng(seed).permutation(labels))  # interleave classes in file order
    write_imagenet_val(root / "imagenet", random_images(len(labels), seed), labels, WNIDS, layout, seed=seed)
    return root


@pytest.fixture
def data_root(tmp_path) -> Path:
    return make_val(tmp_path / "data")


def tiny_model(seed: int = 0, arch: str = "resnet18", num_classes: int = NUM_CLASSES) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    # randomise BN statistics too, so that a load that skips them changes the logits
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def save_cutmix_format(model: torch.nn.Module, path: Path) -> Path:
    """Exactly what CutMix-PyTorch's train.py saves for a DataParallel model."""
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({"epoch": 300, "arch": "resnet", "state_dict": sd, "best_err1": 21.4, "best_err5": 5.92, "optimizer": opt.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def shared_files(tmp_path_factory) -> Path:
    """A folder for files built once per session (per pytest-xdist worker) and only read by tests."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def _checkpoint(shared_files) -> Path:
    folder = shared_files / "checkpoint"
    folder.mkdir()
    return save_cutmix_format(tiny_model(), folder / "model_best.pth.tar")


@pytest.fixture
def checkpoint(_checkpoint) -> Path:
    """A random ResNet-18 in CutMix-PyTorch's format, written once per session: read only."""
    return _checkpoint


@pytest.fixture
def run_bench(capsys):
    """Call the CLI in-process; returns (exit code, stdout, stderr)."""
    from bench.cli import main

    def call(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call



def assert_informative(metrics: dict[str, float], bounds: tuple[float, float] = (0.0, 100.0)) -> None:
    """An end-to-end check that compares metrics is only worth something when they are not all at
    a bound: all 0 (or all 100) would also come out of a pipeline that never scores a hit."""
    values = [v for v in metrics.values() if isinstance(v, (int, float))]
    assert values, "no metrics to compare"
    for bound in bounds:
        assert not all(v == bound for v in values), f"every compared metric is {bound}: {metrics}"


CARD = """name: {name}
description: tiny test backbone {name}
arch: resnet18
num_classes: {n}
weights: {{file: {file}, format: cutmix, sha256: {sha}}}
preprocessing: {{resize: 64, crop: 56, interpolation: bilinear}}
provenance: {{reported: {{imagenet_cls: {{top1_err: 12.5}}}}}}
"""


@pytest.fixture(scope="session")
def _card_weights(shared_files) -> dict[str, Path]:
    return {name: save_cutmix_format(tiny_model(seed=10 + i), shared_files / f"{name}.pth.tar") for i, name in enumerate(["tiny_a", "tiny_b"])}


@pytest.fixture
def cards(tmp_path, monkeypatch, _card_weights):
    """Cards tiny_a and tiny_b (two different random ResNet-18s) in a BENCH_CARDS folder. The
    weights are written once per session and shared: a test that changes a card's file first
    takes its own copy with own_weights(cards, name)."""
    folder = tmp_path / "cards"
    folder.mkdir()
    for name, path in _card_weights.items():
        (folder / f"{name}.yaml").write_text(CARD.format(name=name, n=NUM_CLASSES, file=path, sha="null"))
    monkeypatch.setenv("BENCH_CARDS", str(folder))
    return dict(_card_weights)


def own_weights(cards: dict[str, Path], name: str) -> Path:
    """Give card `name` a private copy of its weights (in the test's folder) and return its path."""
    import shutil

    folder = Path(os.environ["BENCH_CARDS"])
    own = shutil.copy(cards[name], folder.parent / f"{name}.pth.tar")
    (folder / f"{name}.yaml").write_text(CARD.format(name=name, n=NUM_CLASSES, file=own, sha="null"))
    cards[name] = Path(own)
    return Path(own)


def assert_stats_reproduce(record: dict, samples_dir: Path | None = None) -> int:
    """Every metric of a stored record that declares a per-sample statistic (bench.task.Stat) is
    given back exactly by that statistic computed on the record's samples file: what bench check
    resamples is what was scored, alone and computed with its group (check.Groups, as bench check
    does). Returns how many metrics were checked."""
    import json

    from bench.checks import pairing
    from bench.checks.check import Groups, compare_metric

    task = pairing.StoredTask.of(record)
    path = Path(record["artifacts"]["samples"]) if samples_dir is None else samples_dir / f"{record['run_id']}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    checked = 0
    groups = Groups.of(task, record["metrics"])
    for metric, value in record["metrics"].items():
        spec = task.metric_spec(metric)
        if spec.stat is None:
            continue
        try:
            alone = compare_metric(task, metric, spec, rows, rows, "new", "ref", 100, 0, 0.05)
        except pairing.NotComparable:
            continue
        grouped = compare_metric(task, metric, spec, rows, rows, "new", "ref", 100, 0, 0.05, groups)
        assert alone.new == pytest.approx(value, abs=1e-9), (record["task"]["name"], metric, alone.new, value)
        assert (grouped.new, grouped.low, grouped.high) == pytest.approx((alone.new, alone.low, alone.high), abs=1e-9), (record["task"]["name"], metric)
        checked += 1
    return checked
