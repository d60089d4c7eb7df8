"""Robustness summary metrics: mCE and relative mCE against the formula computed by hand on a
fixture table, `bench score mce` on JSON and CSV, and calibration (ECE, NLL, reliability bins)
against torchmetrics and a hand-made case."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.metrics.calibration import calibration, expected_calibration_error, negative_log_likelihood
from bench.metrics.corruption import ALEXNET_CLEAN_ERR, ALEXNET_ERR, CORRUPTIONS, corruption_metrics


def fixture_errors() -> dict[str, dict[int, float]]:
    """Errors in percent that rise with severity, differently per corruption; two extras."""
    table = {c: {s: 20.0 + 3 * k + 7 * s for s in range(1, 6)} for k, c in enumerate(CORRUPTIONS)}
    table["speckle_noise"] = {s: 50.0 + s for s in range(1, 6)}
    table["saturate"] = {s: 30.0 for s in range(1, 6)}
    return table


def test_mce_is_the_formula_by_hand():
    errors = fixture_errors()
    result = corruption_metrics(errors, clean_error=23.85)
    # by hand: corruption k's mean error is 20 + 3k + 7 * 3 = 41 + 3k (percent)
    ce = [(41 + 3 * k) / ALEXNET_ERR[c] for k, c in enumerate(CORRUPTIONS)]
    assert result["mce"] == pytest.approx(sum(ce) / 15, abs=1e-12)
    assert result["ce"]["gaussian_noise"] == pytest.approx(41 / 0.886428, abs=1e-12)
    rel = [(41 + 3 * k - 23.85) / (ALEXNET_ERR[c] - ALEXNET_CLEAN_ERR) for k, c in enumerate(CORRUPTIONS)]
    assert result["relative_mce"] == pytest.approx(sum(rel) / 15, abs=1e-12)
    assert result["extra_mean_error"] == pytest.approx((53 + 30) / 2) and result["extra_corruptions"] == ["speckle_noise", "saturate"]
    assert result["mean_error_15"] == pytest.approx(sum(41 + 3 * k for k in range(15)) / 15)
    # the extras never enter mCE
    assert corruption_metrics({c: v for c, v in errors.items() if c in CORRUPTIONS})["mce"] == result["mce"]


def test_a_published_anchor():
    """A model with AlexNet's own errors has mCE 100 and relative mCE 100 at AlexNet's clean error."""
    errors = {c: {s: 100 * e for s in range(1, 6)} for c, e in ALEXNET_ERR.items()}
    result = corruption_metrics(errors, clean_error=100 * ALEXNET_CLEAN_ERR)
    assert result["mce"] == pytest.approx(100.0) and result["relative_mce"] == pytest.approx(100.0)


def test_score_mce_reads_json_and_csv(run_bench, tmp_path):
    errors = fixture_errors()
    (tmp_path / "e.json").write_text(json.dumps({c: [v[s] for s in range(1, 6)] for c, v in errors.items()}))
    (tmp_path / "e.csv").write_text("corruption,severity,error\n" + "".join(f"{c},{s},{e}\n" for c, v in errors.items() for s, e in v.items()))
    expected = corruption_metrics(errors, 23.85)
    for name in ("e.json", "e.csv"):
        code, out, err = run_bench("score", "mce", "--errors", tmp_path / name, "--clean-error", 23.85)
        assert code == 0, err
        got = json.loads(out)
        assert got["mce"] == pytest.approx(expected["mce"], abs=1e-12) and got["relative_mce"] == pytest.approx(expected["relative_mce"], abs=1e-12)


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("fog"), "mCE needs all 15 benchmark corruptions; missing fog"),
    (lambda e: e.update(fogg={s: 1.0 for s in range(1, 6)}), "unknown corruption(s) fogg"),
    (lambda e: e["snow"].pop(5), "snow has severities [1, 2, 3, 4], not 1-5"),
    (lambda e: e["snow"].update({2: 0.4e3}), "snow has an error of 400.0, not a percentage"),
])
def test_bad_error_tables_are_one_line(run_bench, tmp_path, change, message):
    errors = fixture_errors()
    change(errors)
    (tmp_path / "e.json").write_text(json.dumps(errors))
    code, out, err = run_bench("score", "mce", "--errors", tmp_path / "e.json")
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, err


def test_ece_equals_torchmetrics_and_a_hand_made_case():
    torchmetrics = pytest.importorskip("torchmetrics")
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(2000, 10))
    targets = rng.integers(0, 10, 2000)
    targets[:1200] = logits[:1200].argmax(1)  # a classifier right more often than not
    ours = calibration(logits, targets)
    ref = torchmetrics.functional.classification.multiclass_calibration_error(torch.tensor(logits).softmax(1), torch.tensor(targets),
                                                                              num_classes=10, n_bins=15, norm="l1")
    assert ours["ece"] == pytest.approx(100 * float(ref), abs=1e-4)  # torchmetrics works in float32
    assert ours["nll"] == pytest.approx(float(torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets))), abs=1e-9)
    assert sum(b["count"] for b in ours["reliability"]) == 2000 and len(ours["reliability"]) == 15
    # by hand: 4 samples, confidences 0.95 (right), 0.95 (wrong), 0.55 (right), 0.2 (wrong), 15 bins:
    # bin (14/15, 1] holds two at accuracy 0.5 -> |0.5 - 0.95| x 2/4; bin (8/15, 9/15] -> |1 - 0.55| x 1/4; bin (3/15, 4/15]... 0.2 = 3/15 exactly: bin (2/15, 3/15]
    conf, correct = np.array([0.95, 0.95, 0.55, 0.2]), np.array([1, 0, 1, 0])
    assert expected_calibration_error(conf, correct) == pytest.approx(100 * (0.45 * 0.5 + 0.45 * 0.25 + 0.2 * 0.25))
    assert negative_log_likelihood(np.array([[0.0, 0.0]]), np.array([1])) == pytest.approx(np.log(2))


def test_imagenet_cls_records_calibration_equal_to_its_logits(run_bench, cards, data_root, tmp_path):
    """imagenet_cls's ECE, NLL and reliability bins equal bench.metrics.calibration on logits
    recomputed with torchvision (ImageFolder, ToTensor + Normalize, the run's batch size), and the
    ECE equals torchmetrics' on them."""
    import torchvision
    from torchvision import transforms as T

    from conftest import NUM_CLASSES

    code, _, err = run_bench("run", "--backbone", "tiny_a", "--task", "imagenet_cls", "--data-root", data_root, "--results", tmp_path / "r",
                             "--batch-size", 5, "--workers", 0)
    assert code == 0, err
    (record,) = json.loads(run_bench("export", "--results", tmp_path / "r")[1])
    model = torchvision.models.resnet18(weights=None, num_classes=NUM_CLASSES)
    sd = torch.load(cards["tiny_a"], weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    tf = T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    data = torchvision.datasets.ImageFolder(str(data_root / "imagenet" / "val"), tf)
    with torch.no_grad():
        logits = torch.cat([model.eval()(x) for x, _ in torch.utils.data.DataLoader(data, batch_size=5)])
    targets = torch.tensor(data.targets)
    expected = calibration(logits.numpy(), targets.numpy())
    assert record["metrics"]["ece"] == pytest.approx(expected["ece"], abs=1e-6) and record["metrics"]["nll"] == pytest.approx(expected["nll"], abs=1e-6)
    assert [b["count"] for b in record["details"]["reliability"]] == [b["count"] for b in expected["reliability"]]
    torchmetrics = pytest.importorskip("torchmetrics")
    ref = torchmetrics.functional.classification.multiclass_calibration_error(logits.softmax(1), targets, num_classes=NUM_CLASSES, n_bins=15)
    assert record["metrics"]["ece"] == pytest.approx(100 * float(ref), abs=1e-4)
    assert record["metric_meta"]["ece"]["higher_is_better"] is False and record["metric_meta"]["nll"]["unit"] == "nats"
