"""The typed record and the declared metrics: records of every schema version read through one
place (stores written by earlier bench versions), every emitted metric has a spec, and each
record keeps the full spec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.record import SCHEMA_VERSION, Record, build_record, read_record
from bench.task import MetricSpec

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("version", [1, 2])
def test_stores_written_by_earlier_versions_still_read(run_bench, tmp_path, version):
    """tests/data/store_schema{1,2}.sqlite: a mini imagenet_cls run (full and --limit 5) and a
    limited cub_loc run, written by bench at the commits that wrote schema 1 (945b4b6) and 2 (acf35e1)."""
    results = tmp_path / "r"
    results.mkdir()
    shutil.copy(DATA / f"store_schema{version}.sqlite", results / "bench.sqlite")
    code, out, err = run_bench("export", "--results", results)
    assert code == 0, err
    records = json.loads(out)
    assert len(records) == 3 and {r["schema_version"] for r in records} == {SCHEMA_VERSION} and {r["migrated_from"] for r in records} == {version}
    for r in records:
        assert Record.__required_keys__ <= set(r) and "launch" not in r
        assert set(r["metric_meta"]) == set(r["metrics"]) and all(m["name"] == k for k, m in r["metric_meta"].items())
        assert (r["data"]["fingerprint"] == "") == (version == 1)
    code, out, err = run_bench("report", "--results", results, "--include-limited")
    assert code == 0 and "imagenet_cls/top1_err ↓" in out and "cub_loc/top1_loc ↑" in out and "(limited 6/40)" in out, out


def test_a_record_of_a_newer_schema_is_refused():
    with pytest.raises(BenchError, match="schema version 99, newer than this bench's"):
        read_record({"schema_version": 99})


def test_build_record_names_missing_fields():
    with pytest.raises(TypeError, match="missing .*'metrics'"):
        build_record(run_id="x")


def test_metric_families_match_their_members():
    family = MetricSpec("maxboxacc@{iou}", True)
    assert family.matches("maxboxacc@40") and family.matches("maxboxacc@30")
    assert not family.matches("maxboxacc") and not family.matches("maxboxacc_v2") and not family.matches("xmaxboxacc@30")


def test_every_emitted_metric_needs_a_spec(tmp_path):
    """run_plan refuses a metric that no MetricSpec declares (a table would show it with no
    direction and no convention)."""
    import torch

    from bench.evaluation import Evaluator, Split, run_plan
    from bench.task import Plan, RunContext, Task, DataLocator

    class Constant(Evaluator):
        def reset(self): self.n = 0
        def process(self, batch, outputs): self.n += len(batch)
        def state(self): return self.n
        def merge(self, states): self.n = sum(states)
        def metrics(self): return {"acc": 50.0, "acc@3": 70.0, "acc@5": 90.0, "surprise": 1.0}

    class Toy(Task):
        name, version = "toy", "1"
        metrics = (MetricSpec("acc_mean", True, aggregate=("mean", "acc@{k}")), MetricSpec("acc", True), MetricSpec("acc@{k}", True))

    class Card:
        name = "toy"

    class Backbone:
        card = Card()

    ctx = RunContext(backbone=Backbone(), config={}, data=DataLocator(), device="cpu", batch_size=2, workers=0, limit=None, seed=0,
                     progress=False, artifact_dir=tmp_path)
    plan = Plan([Split("s", [torch.zeros(1)] * 4, Constant(), forward=lambda b: b)])
    with pytest.raises(BenchError, match="emitted metric\\(s\\) surprise that none of its MetricSpecs declares"):
        run_plan(Toy(), plan, ctx)
    Toy.metrics = Toy.metrics + (MetricSpec("surprise", False),)
    result = run_plan(Toy(), plan, ctx)
    # declared order, the family's members as emitted, the aggregation computed from them
    assert list(result.metrics) == ["acc_mean", "acc", "acc@3", "acc@5", "surprise"] and result.metrics["acc_mean"] == 80.0
    assert (result.n_total, result.n_evaluated) == (4, 4) and set(result.details["timing"]["s"]) == {"data_s", "compute_s", "metric_s"}


def test_every_task_declares_its_metrics_once():
    from tasks import TASKS

    for entry in TASKS.entries():
        task = entry.load()
        names = [m.name for m in task.metrics]
        assert len(names) == len(set(names)), entry.name
        assert task.headline_metrics(), entry.name  # the demo's columns come from the specs
        assert all(m.description for m in task.metrics if m.headline), entry.name


def test_a_family_member_gets_its_spec_and_arrow(run_bench, tmp_path):
    """`--set ious=[40]` emits maxboxacc@40: it is a member of the declared family (direction,
    unit, convention kept in the record), so the report shows the right arrow."""
    from bench.mini.digits import make_scenes
    from bench.mini.model import mini_resnet
    from conftest import save_cutmix_format
    from test_localization import write_mini_cub

    root = write_mini_cub(tmp_path / "data", make_scenes("train", 20, seed=1), make_scenes("val", 20, seed=1))
    ckpt = save_cutmix_format(mini_resnet(10), tmp_path / "m.pth.tar")
    code, _, err = run_bench("run", "--backbone", ckpt, "--arch", "bench.mini.model:mini_resnet", "--num-classes", "10", "--task", "cub_loc", "--mini",
                             "--set", "ious=[40]", "--set", "interval=0.05", "--data-root", root, "--results", tmp_path / "r", "--workers", "0")
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    meta = record["metric_meta"]["maxboxacc@40"]
    assert meta["name"] == "maxboxacc@{iou}" and meta["higher_is_better"] is True and "IoU >= iou" in meta["description"]
    assert record["metrics"]["maxboxacc_v2"] == record["metrics"]["maxboxacc@40"]  # the mean over the one IoU asked for
    assert record["metric_meta"]["top1_loc"]["tables"] == ["paper Table 9: CUB200 Top-1 Loc", "transfer: CUB200 Loc (Top-1 Loc)"] and record["metric_meta"]["top1_loc"]["headline"]
    code, out, _ = run_bench("report", "--results", tmp_path / "r")
    assert "cub_loc/maxboxacc@40 ↑" in out


def test_report_and_export_read_records_without_torch(tmp_path):
    """The table builder and the record reader are torch-free: `bench report` and `bench export`
    on a store import no torch (and so start in a fraction of a second)."""
    import subprocess
    import sys

    results = tmp_path / "r"
    results.mkdir()
    shutil.copy(DATA / "store_schema2.sqlite", results / "bench.sqlite")
    for argv in (["report", "--results", str(results), "--include-limited"], ["export", "--results", str(results)]):
        code = (
            "import sys\nfrom bench.cli import main\ncode = main(%r)\n"
            "print('CODE', code)\nprint('TORCH', sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))" % argv
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip().endswith("CODE 0\nTORCH []"), out.stdout[-500:] + out.stderr
