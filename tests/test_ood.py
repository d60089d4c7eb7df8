"""cifar100_ood and imagenet_ood on fixtures in the real layouts (CIFAR-100's pickles, ODIN's
folders, image folders under ood/), against an independent recomputation: torchvision's readers
and transforms, the scores written out here (ODIN's calData.py steps, one image at a time),
scikit-learn and ODIN's threshold sweep; the noise sets' definition; the stored per-sample scores
giving back every metric; `bench score ood`; the figure; and the bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.mini.layouts import write_image_folder
from conftest import NUM_CLASSES, assert_informative, assert_stats_reproduce, make_val, tiny_model
from test_cifar import CIFAR_MEAN, CIFAR_STD, cifar_fixture, torchvision_cifar
from test_ood_metrics import odin_sweep

ODIN = {"tinyimagenet_crop": "Imagenet", "tinyimagenet_resize": "Imagenet_resize", "lsun_crop": "LSUN", "lsun_resize": "LSUN_resize", "isun": "iSUN"}
N_FOLDER, N_NOISE = 16, 20


def odin_folders(data: Path, seed: int = 0) -> None:
    """ODIN's released layout: <name>/test/<n>.jpg, 32x32 (crop sets: random pixels; resize sets: smooth)."""
    rng = np.random.default_rng(seed)
    for k, folder in enumerate(ODIN.values()):
        images = rng.integers(0, 256, size=(N_FOLDER, 32, 32, 3), dtype=np.uint8)
        if "resize" in folder:
            images = np.repeat(np.repeat(images[:, ::4, ::4], 4, axis=1), 4, axis=2)
        write_image_folder(data / "ood" / folder / "test", images, ".jpg")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar_ood")
    cifar_fixture(root / "data", n_test=60)
    odin_folders(root / "data")
    torch.manual_seed(3)
    model = torchvision.models.resnet18(num_classes=100).eval()
    torch.save(model.state_dict(), root / "r18.pth")
    return root


def cifar_args(root: Path, results: Path, *extra) -> list:
    return ["run", "--backbone", root / "r18.pth", "--arch", "resnet18", "--num-classes", 100, "--resize", 32, "--crop", 32,
            "--mean", ",".join(map(str, CIFAR_MEAN)), "--std", ",".join(map(str, CIFAR_STD)), "--task", "cifar100_ood", "--data-root", root / "data",
            "--results", results, "--workers", 0, "--batch-size", 16, "--set", f"noise_count={N_NOISE}", *extra]


def odin_direct(model, x: torch.Tensor, temperature: float, epsilon: float, gradient_temperature: float | None = None) -> float:
    """ODIN's calData.py for one normalised image: tempered CE against the predicted class,
    gradient sign ((grad >= 0) - 0.5) * 2 divided by the normalisation std per channel, a step of
    -epsilon, then max softmax of the tempered logits (numpy, as ODIN does; float64 here)."""
    inputs = x.clone().unsqueeze(0).requires_grad_(True)
    outputs = model(inputs)
    label = torch.tensor([int(outputs.detach().numpy()[0].argmax())])
    loss = torch.nn.CrossEntropyLoss()(outputs / (gradient_temperature or temperature), label)
    loss.backward()
    gradient = (torch.ge(inputs.grad.data, 0).float() - 0.5) * 2
    for c in range(3):
        gradient[0][c] = gradient[0][c] / CIFAR_STD[c]
    temp = torch.add(inputs.data, gradient, alpha=-epsilon)
    out = (model(temp) / temperature).detach().numpy()[0].astype(np.float64)
    out = out - out.max()
    return float(np.exp(out).max() / np.exp(out).sum())


def independent_scores(root: Path, model) -> dict[str, dict[str, np.ndarray]]:
    """Every set's images through torchvision's readers and transforms: msp, max logit, energy, odin."""
    from torchvision import transforms as T

    from bench.data.ood import NoiseImages

    tf = T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    sets = {}
    cifar = torchvision_cifar(root / "data")
    cifar.transform = tf
    sets["cifar100"] = torch.stack([cifar[i][0] for i in range(len(cifar))])
    for name, folder in ODIN.items():
        found = torchvision.datasets.ImageFolder(str(root / "data" / "ood" / folder), transform=tf)
        sets[name] = torch.stack([found[i][0] for i in range(len(found))])
    norm = T.Normalize(CIFAR_MEAN, CIFAR_STD)
    for kind in ("uniform", "gaussian"):  # bench's generator (its definition is tested below), normalised here
        noise = NoiseImages(kind, N_NOISE, 32, 0)
        sets[kind] = torch.stack([norm(noise[i][0] / 255) for i in range(N_NOISE)])
    out = {}
    for name, x in sets.items():
        with torch.no_grad():
            logits = model(x).double()
        out[name] = {"msp": torch.softmax(logits, 1).max(1).values.numpy(), "max_logit": logits.max(1).values.numpy(),
                     "energy": torch.logsumexp(logits, 1).numpy(), "odin": np.array([odin_direct(model, xi, 1000.0, 0.0028) for xi in x]),
                     "pred": logits.argmax(1).numpy()}
    return out


def exported(run_bench, results: Path) -> list[dict]:
    return json.loads(run_bench("export", "--results", results)[1])


def test_cifar100_ood_equals_an_independent_recomputation(run_bench, cifar_root, tmp_path):
    code, out, err = run_bench(*cifar_args(cifar_root, tmp_path / "r", "--set", "scores=[msp, max_logit, energy, odin]"))
    assert code == 0, err
    (record,) = exported(run_bench, tmp_path / "r")
    n_sets = len(record["details"]["sets"]) if "sets" in record["details"] else sum(1 for m in record["metrics"] if m.startswith("msp_auroc@"))
    assert assert_stats_reproduce(record) == 1 + 4 * 7 * (1 + n_sets)  # top-1 error, and every OOD metric per set and over sets, from the rows bench check resamples
    model = torchvision.models.resnet18(num_classes=100)
    model.load_state_dict(torch.load(cifar_root / "r18.pth", weights_only=True))
    model.eval()
    ref = independent_scores(cifar_root, model)
    m = record["metrics"]
    for score in ("msp", "max_logit", "energy", "odin"):
        ins = ref["cifar100"][score]
        for name in (*ODIN, "uniform", "gaussian"):
            outs = ref[name][score]
            y = np.r_[np.ones(len(ins)), np.zeros(len(outs))]
            s = np.r_[ins, outs]
            tol = 1e-3 if score == "odin" else 1e-9  # ODIN: one image at a time here, batches in bench
            assert m[f"{score}_auroc@{name}"] == pytest.approx(100 * roc_auc_score(y, s), abs=tol), (score, name)
            assert m[f"{score}_aupr_in@{name}"] == pytest.approx(100 * average_precision_score(y, s), abs=tol), (score, name)
            if score != "odin":
                tnr, acc = odin_sweep(ins, outs)
                assert m[f"{score}_tnr_at_tpr95@{name}"] == pytest.approx(tnr, abs=1e-9) and m[f"{score}_detection_acc@{name}"] == pytest.approx(acc, abs=1e-9)
        assert m[f"{score}_auroc"] == pytest.approx(np.mean([m[f"{score}_auroc@{n}"] for n in (*ODIN, "uniform", "gaussian")]))
    targets = np.array(torchvision_cifar(cifar_root / "data").targets)
    assert m["id_top1_err"] == pytest.approx(100 * np.mean(ref["cifar100"]["pred"] != targets), abs=1e-9)
    assert_informative({k: v for k, v in m.items() if k.startswith("msp_auroc@")})
    # the record says what each metric means and where the noise came from
    d = record["details"]
    assert "ODIN" in d["conventions"]["tnr_at_tpr95"] and "OpenOOD" in d["conventions"]["fpr_at_tpr95_ood"] and d["odin"] == {"temperature": 1000.0, "epsilon": 0.0028}  # ODIN's README value for CIFAR-100
    assert "N(0.5, 1)" in d["sets"]["gaussian"]["generated"] and d["sets"]["isun"]["images"] == N_FOLDER
    assert record["n_samples"]["total"] == 60 + 5 * N_FOLDER + 2 * N_NOISE
    # the stored per-sample scores give back every metric, exactly
    for score in ("msp", "odin"):
        code, text, err = run_bench("score", "ood", "--samples", record["artifacts"]["samples"], "--score", score)
        assert code == 0, err
        again = json.loads(text)
        for name, values in again["sets"].items():
            for k, v in values.items():
                assert m[f"{score}_{k}@{name}"] == v
        assert again["mean"]["auroc"] == pytest.approx(m[f"{score}_auroc"], abs=1e-12)


def test_the_noise_sets_are_odins_definition_and_seeded():
    from bench.data.ood import NoiseImages

    uniform = torch.stack([NoiseImages("uniform", 200, 32, 0)[i][0] for i in range(200)]) / 255
    gaussian = torch.stack([NoiseImages("gaussian", 200, 32, 0)[i][0] for i in range(200)]) / 255
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean().item() - 0.5) < 0.01 and abs(uniform.var().item() - 1 / 12) < 0.002
    # N(0.5, 1) clipped to [0, 1]: P(x <= 0) = P(x >= 1) = Phi(-0.5) = 0.3085
    assert abs((gaussian == 0).float().mean().item() - 0.3085) < 0.01 and abs((gaussian == 1).float().mean().item() - 0.3085) < 0.01
    assert len(torch.unique(uniform)) > 100_000  # continuous, not quantised to 256 levels
    a, b = NoiseImages("gaussian", 50, 32, 0), NoiseImages("gaussian", 50, 32, 0)
    assert torch.equal(a[7][0], b[7][0]) and not torch.equal(a[7][0], a[8][0])
    assert not torch.equal(a[7][0], NoiseImages("gaussian", 50, 32, 1)[7][0]) and a[7][1] == -1


def test_cifar100_ood_limit_and_a_subset_of_sets(run_bench, cifar_root, tmp_path):
    code, out, err = run_bench(*cifar_args(cifar_root, tmp_path / "r", "--set", "ood_sets=[lsun_crop, uniform]", "--limit", 10))
    assert code == 0, err
    (record,) = exported(run_bench, tmp_path / "r")
    assert record["n_samples"] == {"total": 60 + N_FOLDER + N_NOISE, "evaluated": 30} and record["limited"]
    assert sorted(k.split("@")[1] for k in record["metrics"] if k.startswith("msp_auroc@")) == ["lsun_crop", "uniform"]
    assert "| msp_auroc" in out


def imagenet_ood_root(tmp_path: Path) -> Path:
    data = make_val(tmp_path / "data")
    rng = np.random.default_rng(5)
    write_image_folder(data / "ood" / "inaturalist" / "images", rng.integers(0, 256, size=(8, 48, 40, 3), dtype=np.uint8), ".jpg")
    for k, texture in enumerate(("banded", "dotted")):  # Textures' layout: dtd/images/<class>/
        write_image_folder(data / "ood" / "textures" / "dtd" / "images" / texture, rng.integers(0, 256, size=(3, 50, 50, 3), dtype=np.uint8), ".jpg")
    return data


def imagenet_args(data: Path, checkpoint: Path, results: Path, *extra) -> list:
    return ["run", "--backbone", checkpoint, "--arch", "resnet18", "--num-classes", NUM_CLASSES, "--task", "imagenet_ood", "--data-root", data,
            "--results", results, "--workers", 0, "--batch-size", 7, *extra]


def test_imagenet_ood_on_named_folders_equals_an_independent_recomputation(run_bench, checkpoint, tmp_path):
    from torchvision import transforms as T

    data = imagenet_ood_root(tmp_path)
    code, out, err = run_bench(*imagenet_args(data, checkpoint, tmp_path / "r"))
    assert code == 0, err
    (record,) = exported(run_bench, tmp_path / "r")
    assert sorted(record["details"]["sets"]) == ["inaturalist", "textures"]  # every folder under ood/
    assert assert_stats_reproduce(record) == len(record["metrics"])
    model = tiny_model()
    model.eval()
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    val = torchvision.datasets.ImageFolder(str(data / "imagenet" / "val"), transform=tf)
    scores = {}
    for name, paths in (("in", [p for p, _ in val.samples]), ("inaturalist", sorted((data / "ood" / "inaturalist").rglob("*.jpg"))),
                        ("textures", sorted((data / "ood" / "textures").rglob("*.jpg")))):
        x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
        with torch.no_grad():
            scores[name] = torch.softmax(model(x).double(), 1).max(1).values.numpy()
    for name in ("inaturalist", "textures"):
        y = np.r_[np.ones(len(scores["in"])), np.zeros(len(scores[name]))]
        assert record["metrics"][f"msp_auroc@{name}"] == pytest.approx(100 * roc_auc_score(y, np.r_[scores["in"], scores[name]]), abs=1e-9)
        tnr, acc = odin_sweep(scores["in"], scores[name])
        assert record["metrics"][f"msp_tnr_at_tpr95@{name}"] == pytest.approx(tnr, abs=1e-9)
        assert record["metrics"][f"msp_detection_acc@{name}"] == pytest.approx(acc, abs=1e-9)
    # naming one set scores only that one
    code, _, err = run_bench(*imagenet_args(data, checkpoint, tmp_path / "r2", "--set", "ood_sets=[textures]"))
    assert code == 0, err
    (one,) = exported(run_bench, tmp_path / "r2")
    assert one["metrics"]["msp_auroc@textures"] == record["metrics"]["msp_auroc@textures"] and "msp_auroc@inaturalist" not in one["metrics"]
    # the figure, from the stored records
    code, out, err = run_bench("report", "--figure", "ood", "--results", tmp_path / "r", "--output", tmp_path / "ood.png")
    assert code == 0, err
    assert (tmp_path / "ood.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_bench("report", "--figure", "ood", "--results", tmp_path / "r", "--score", "odin", "--output", tmp_path / "x.png")
    assert code != 0 and "no imagenet_ood record of" in err and "has 'odin' scores" in err
    code, _, err = run_bench("report", "--figure", "ood", "--results", tmp_path / "r", "--score", "mps", "--output", tmp_path / "x.png")
    assert code != 0 and "unknown OOD score 'mps'. did you mean msp?" in err
    # a second run with ODIN scores: the figure of odin finds it, though the table shows another run
    code, _, err = run_bench(*imagenet_args(data, checkpoint, tmp_path / "r", "--set", "scores=[odin]", "--set", "ood_sets=[textures]"))
    assert code == 0, err
    code, out, err = run_bench("report", "--figure", "ood", "--results", tmp_path / "r", "--score", "odin", "--output", tmp_path / "odin.png")
    assert code == 0 and (tmp_path / "odin.png").stat().st_size > 10_000, err


def _undecodable(data):
    next((data / "ood" / "inaturalist" / "images").iterdir()).write_bytes(b"not an image")


def _empty(data):
    shutil.rmtree(data / "ood" / "textures" / "dtd")
    (data / "ood" / "textures" / "dtd").mkdir()


@pytest.mark.parametrize("damage, extra, message", [
    (None, ("--set", "ood_sets=[inaturalst]"), "unknown OOD set 'inaturalst'. did you mean inaturalist?"),
    (_empty, (), "OOD set 'textures' has no images"),
    (_undecodable, (), "cannot decode image"),
    (lambda d: shutil.rmtree(d / "ood"), (), "dataset 'ood' not found"),
    (None, ("--set", "scores=[msp, softmax]"), "scores takes a list of"),
    (None, ("--set", "scores=[msp, msp]"), "names an item twice"),
])
def test_bad_imagenet_ood_is_one_line_and_stores_nothing(damage, extra, message, run_bench, checkpoint, tmp_path):
    data = imagenet_ood_root(tmp_path)
    if damage:
        damage(data)
    code, out, err = run_bench(*imagenet_args(data, checkpoint, tmp_path / "r", *extra))
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert exported(run_bench, tmp_path / "r") == []


@pytest.mark.parametrize("damage, extra, message", [
    (lambda d: shutil.rmtree(d / "ood" / "iSUN"), (), "OOD set 'isun' not found"),
    (None, ("--set", "ood_sets=[lsun]"), "ood_sets takes a list of"),
    (lambda d: (d / "cifar-100-python" / "test").write_bytes(b"\x80\x02}q\x00"), (), "cannot read CIFAR file"),
    # ODIN reads its folders as they are: an image of another size is refused, not rescaled to 32
    (lambda d: Image.fromarray(np.zeros((36, 36, 3), np.uint8)).save(sorted((d / "ood" / "LSUN").rglob("*.*"))[0]), (), "is 36x36, not 32x32"),
    (None, ("--set", "preset=odin_code"), "skip_first=1000 leaves no image of cifar100 (60 images)"),
])
def test_bad_cifar100_ood_is_one_line_and_stores_nothing(damage, extra, message, run_bench, cifar_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(cifar_root / "data", data)
    if damage:
        damage(data)
    args = cifar_args(cifar_root, tmp_path / "r", *extra)
    args[args.index("--data-root") + 1] = data
    code, out, err = run_bench(*args)
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert exported(run_bench, tmp_path / "r") == []


def test_bench_score_ood_on_npy_and_text(run_bench, tmp_path):
    rng = np.random.default_rng(0)
    ins, a, b = rng.normal(1, 1, 3000), rng.normal(0, 1, 1000), rng.uniform(-1, 3, 500)
    np.save(tmp_path / "in.npy", ins)
    np.save(tmp_path / "a.npy", a)
    (tmp_path / "b.txt").write_text("\n".join(repr(float(v)) for v in b))
    code, out, err = run_bench("score", "ood", "--in", tmp_path / "in.npy", "--out", tmp_path / "a.npy", tmp_path / "b.txt", "--names", "svhn", "textures")
    assert code == 0, err
    result = json.loads(out)
    for name, outs in (("svhn", a), ("textures", b)):
        y = np.r_[np.ones(3000), np.zeros(len(outs))]
        assert result["sets"][name]["auroc"] == pytest.approx(100 * roc_auc_score(y, np.r_[ins, outs]), abs=1e-10)
        assert result["sets"][name]["aupr_out"] == pytest.approx(100 * average_precision_score(1 - y, -np.r_[ins, outs]), abs=1e-10)
        assert result["sets"][name]["tnr_at_tpr95"] == odin_sweep(ins, outs)[0]
    assert result["mean"]["auroc"] == pytest.approx((result["sets"]["svhn"]["auroc"] + result["sets"]["textures"]["auroc"]) / 2)
    assert "ID positive" in result["conventions"]["tnr_at_tpr95"]


@pytest.mark.parametrize("content, message", [
    (np.zeros((4, 5)), "one score per sample (1-D), got shape (4, 5)"),
    (np.array([0.5, np.nan, 0.1]), "1 non-finite value(s)"),
    ("0.1\n0.2\nabc", "cannot read out-of-distribution (out) scores"),
    ("0.1 0.7\n0.2 0.4", "line 1 holds 2 values, not one score"),
    (None, "does not exist"),
])
def test_bench_score_ood_refuses_bad_files(content, message, run_bench, tmp_path):
    np.save(tmp_path / "in.npy", np.arange(10.0))
    out = tmp_path / ("out.txt" if isinstance(content, str) else "out.npy")
    if isinstance(content, str):
        out.write_text(content)
    elif content is not None:
        np.save(out, content)
    code, text, err = run_bench("score", "ood", "--in", tmp_path / "in.npy", "--out", out)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err


def test_the_released_cutmix_card_reports_beside_table_12(run_bench, cifar_root, tmp_path, monkeypatch):
    """The pyramidnet200_cutmix card on the fixtures, with a PyramidNet-200 saved in the release's
    container where the card looks for its weights: the report shows Table 12's numbers in
    brackets beside the measured ones, and the headline metrics in the run table."""
    from bench.backbones.pyramidnet import pyramidnet200
    from bench.paths import cache_dir
    from test_cifar import save_release

    torch.manual_seed(0)
    weights = cache_dir() / "weights" / "pyramidnet200_cutmix" / "model_best.pth.tar"
    weights.parent.mkdir(parents=True)
    model = pyramidnet200(100)
    for m in model.modules():  # trained-looking statistics, so that the scores vary
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    save_release(model.eval(), weights)
    code, out, err = run_bench("run", "--backbone", "pyramidnet200_cutmix", "--task", "cifar100_ood", "--data-root", cifar_root / "data",
                               "--results", tmp_path / "r", "--workers", 0, "--batch-size", 32, "--set", "noise_count=8", "--set", "scores=[msp]")
    assert code == 0, err
    row = next(line for line in out.splitlines() if "| msp_tnr_at_tpr95 " in line)
    assert row.startswith("| pyramidnet200_cutmix | cifar100_ood v2 |") and "| 69.00 |" in row, out
    code, out, err = run_bench("report", "--backbones", "pyramidnet200_*", "--tasks", "cifar100_ood", "--results", tmp_path / "r")
    assert code == 0, err
    assert "[69.00]" in out and "[94.40]" in out and "[89.10]" in out, out


def test_bench_score_ood_says_what_is_missing(run_bench, tmp_path):
    np.save(tmp_path / "in.npy", np.arange(10.0))
    code, _, err = run_bench("score", "ood", "--in", tmp_path / "in.npy")
    assert code != 0 and "needs --out FILE [FILE ...] (or --samples FILE)" in err
    code, _, err = run_bench("score", "ood", "--in", tmp_path / "in.npy", "--out", tmp_path / "in.npy", "--score", "energy")
    assert code != 0 and "--score picks a score stored in a --samples file" in err
    code, out, err = run_bench("score", "ood", "--in", tmp_path / "in.npy", "--out", tmp_path / "in.npy")
    result = json.loads(out)
    assert code == 0 and result["unit"] == "percent" and result["sets"]["in"]["auroc"] == 50.0 and result["sets"]["in"]["detection_acc"] == 50.0


def test_skip_first_leaves_out_the_first_images_of_every_set(run_bench, cifar_root, tmp_path):
    """ODIN's code scores each set's images after its first 1,000; skip_first=k does the same with k."""
    code, out, err = run_bench(*cifar_args(cifar_root, tmp_path / "r", "--set", "skip_first=5", "--set", "scores=[msp]"))
    assert code == 0, err
    (record,) = exported(run_bench, tmp_path / "r")
    model = torchvision.models.resnet18(num_classes=100)
    model.load_state_dict(torch.load(cifar_root / "r18.pth", weights_only=True))
    ref = independent_scores(cifar_root, model.eval())
    ins = ref["cifar100"]["msp"][5:]
    for name in (*ODIN, "uniform", "gaussian"):
        outs = ref[name]["msp"][5:]
        y, s = np.r_[np.ones(len(ins)), np.zeros(len(outs))], np.r_[ins, outs]
        assert record["metrics"][f"msp_auroc@{name}"] == pytest.approx(100 * roc_auc_score(y, s), abs=1e-9), name
    assert record["n_samples"]["total"] == 60 + 5 * N_FOLDER + 2 * N_NOISE - 5 * 8 and record["details"]["skipped_per_set"] == 5


def test_odin_score_equals_odins_steps_image_by_image():
    """bench's batched ODIN against ODIN's calData.py steps written out one image at a time
    (tempered loss for the gradient, sign, step / std, tempered softmax), per image."""
    from bench.ood_scores import odin_score

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=100).eval()
    with torch.no_grad():
        model.fc.weight.mul_(200)  # confident logits: at T = 1 the softmax is peaked, at T = 1000 nearly flat, so the two gradients differ
    x = torch.randn(6, 3, 32, 32)
    std = torch.tensor(CIFAR_STD, dtype=torch.float32).view(1, 3, 1, 1)
    _, scores = odin_score(model, x, std, 1000.0, 0.0028)
    expected = [odin_direct(model, xi, 1000.0, 0.0028) for xi in x]
    assert scores.tolist() == pytest.approx(expected, abs=1e-7)
    untempered = [odin_direct(model, xi, 1000.0, 0.0028, gradient_temperature=1.0) for xi in x]
    assert untempered != pytest.approx(expected, abs=1e-7)  # the fixture tells a tempered gradient from an untempered one
