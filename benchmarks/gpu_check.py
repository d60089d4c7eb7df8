"""The GPU check a maintainer with a GPU runs once (benchmarks/gpu_check.sh; at most ~8 minutes on
one GPU at the default sizes). It runs on a CPU too, slowly, with --small (what the test does).

Checks (exit 1 when one fails):
  1. imagenet_cls through bench's loop against a bare torch loop on a generated ImageNet-style
     val folder (5,000 JPEGs of 500x375): the same top-1 (exactly), and on a GPU throughput at
     least 0.9 of the bare loop's. With torchvision's GPU JPEG decoder (CUDA), its decode rate
     against CPU loader workers, for information.
  2. Faster R-CNN and SSD, N iterations each through `bench run` on the mini VOCdevkit, in bf16
     autocast and in fp32: finite losses; the bf16 run's mean loss over its last quarter of
     iterations within --loss-tolerance (relative) of the fp32 run's, which still means something
     when a short schedule leaves both mAPs near 0; and the bf16 stage's VOC07 mAP within
     --map-tolerance points of the fp32 stage's (on a CPU, autocast is off: both are fp32).
  3. One WSOL fine-tuning mini epoch (cub_loc --mini): finite losses, images/s.
  4. The CAM overhead (forward + CAMs against the forward): at most 10% on a GPU.
Then one table of the figures and the projected GPU-hours of each full protocol for one backbone
of the measured architecture, from the measured throughputs and the tasks' default schedules
(evaluation time not included for the training tasks; a projection, not a measurement).

    benchmarks/gpu_check.sh [--small] [--arch resnet50] [--images 5000] [--iterations 200]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))


def bench(args: list[str], env: dict[str, str]) -> dict:
    """`bench run ...` in a subprocess; its record (bench export)."""
    out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench {' '.join(args[:6])} ... failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    results = args[args.index("--results") + 1]
    exported = subprocess.run([sys.executable, "-m", "bench", "export", "--results", results], cwd=REPO, env=env, capture_output=True, text=True)
    return json.loads(exported.stdout)[-1]


def classification(device: str, arch: str, images: int, batch: int, workers: int) -> dict:
    import numpy as np
    import torch
    import torchvision
    from torchvision import transforms as T

    from bench.backbones.build import LoadedBackbone, LoadReport
    from bench.cards import BackboneCard, Preprocessing
    from bench.evaluation import run_plan
    from bench.mini.layouts import write_imagenet_val
    from bench.task import DataLocator, RunContext
    from tasks.classification import ImageNetClassification

    classes = 10
    rng = np.random.default_rng(0)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        labels = [i % classes for i in range(images)]
        t = time.perf_counter()
        write_imagenet_val(root / "imagenet", (rng.integers(0, 256, (375, 500, 3), dtype=np.uint8) for _ in labels), labels, [f"n{i:08d}" for i in range(classes)])
        out["write_s"] = time.perf_counter() - t
        torch.manual_seed(0)
        model = torchvision.models.get_model(arch, weights=None, num_classes=classes).eval().to(device)
        prep = Preprocessing()
        tf = T.Compose([T.Resize(prep.resize), T.CenterCrop(prep.crop), T.ToTensor(), T.Normalize(prep.mean, prep.std)])

        def bare() -> tuple[float, float]:
            loader = torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(str(root / "imagenet" / "val"), tf), batch_size=batch, num_workers=workers,
                                                 pin_memory=device == "cuda")
            start, hits, n = time.perf_counter(), 0, 0
            with torch.inference_mode():
                for x, y in loader:
                    top = model(x.to(device, non_blocking=True)).argmax(1).cpu()
                    hits += int((top == y).sum())
                    n += len(y)
            return n / (time.perf_counter() - start), 100 * (1 - hits / n)

        def ours() -> tuple[float, float]:
            card = BackboneCard(name="check", arch=arch, num_classes=classes, preprocessing=prep)
            ctx = RunContext(backbone=LoadedBackbone(card, model, "0" * 64, None, LoadReport("state_dict")), config={}, data=DataLocator(str(root)),
                             device=device, batch_size=batch, workers=workers, limit=None, seed=0, progress=False, artifact_dir=root / "artifacts")
            task = ImageNetClassification()
            start = time.perf_counter()
            result = run_plan(task, task.plan(ctx), ctx)
            return result.n_evaluated / (time.perf_counter() - start), result.metrics["top1_err"]

        rounds = [(bare(), ours()) for _ in range(2)]
        out["bare_img_s"] = max(b[0] for b, _ in rounds)
        out["bench_img_s"] = max(o[0] for _, o in rounds)
        out["same_top1"] = all(abs(b[1] - o[1]) < 1e-9 for b, o in rounds)
        out["top1_err"] = rounds[0][1][1]
        if device == "cuda":
            out.update(gpu_decode(root / "imagenet" / "val", workers))
    return out


def gpu_decode(folder: Path, workers: int) -> dict:
    """torchvision's nvJPEG decode (batched, on the GPU) against PIL decoding in loader workers."""
    import torch
    import torchvision
    from torchvision.io import decode_jpeg, read_file

    files = sorted(folder.rglob("*.JPEG"))[:2000]
    try:
        data = [read_file(str(f)) for f in files]
        decode_jpeg(data[:8], device="cuda")
    except (RuntimeError, TypeError) as exc:
        return {"gpu_decode": f"not available ({' '.join(str(exc).split())[:80]})"}
    torch.cuda.synchronize()
    t = time.perf_counter()
    for k in range(0, len(data), 64):
        decode_jpeg(data[k:k + 64], device="cuda")
    torch.cuda.synchronize()
    gpu = len(data) / (time.perf_counter() - t)
    ds = torchvision.datasets.ImageFolder(str(folder), torchvision.transforms.PILToTensor())
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(len(files))), batch_size=64, num_workers=workers, collate_fn=lambda b: b)
    t = time.perf_counter()
    for _ in loader:
        pass
    cpu = len(files) / (time.perf_counter() - t)
    return {"gpu_decode_img_s": gpu, "cpu_decode_img_s": cpu}


def cam_overhead(device: str, arch: str, batch: int) -> float:
    import torch
    import torchvision

    from bench.cam import CamExtractor
    from cam_overhead import interleaved

    model = torchvision.models.get_model(arch, weights=None).eval().to(device)
    plain = torchvision.models.get_model(arch, weights=None).eval().to(device)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(batch, 3, 224, 224, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    ext = CamExtractor(model)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def bare() -> None:
        plain(x)
        sync()

    def cams() -> None:
        ext(x)
        ext.cams(labels)
        sync()

    with torch.inference_mode():
        b, c = interleaved([bare, cams], 5)
    return 100 * (c / b - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="CPU sizes: 64 images, 4 iterations, resnet18, a few mini images")
    parser.add_argument("--arch", help="torchvision ResNet for every check (default resnet50; --small: resnet18)")
    parser.add_argument("--images", type=int, help="classification images (default 5000; --small: 64)")
    parser.add_argument("--iterations", type=int, help="detector iterations per run (default 200; --small: 4)")
    parser.add_argument("--batch-size", type=int, help="classification batch (default 128; --small: 16)")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--map-tolerance", type=float, default=3.0, help="bf16 vs fp32 VOC07 mAP, points")
    parser.add_argument("--loss-tolerance", type=float, default=0.25, help="bf16 vs fp32 mean loss over the last quarter of iterations, relative")
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arch = args.arch or ("resnet18" if args.small else "resnet50")
    images = args.images or (64 if args.small else 5000)
    iterations = args.iterations or (4 if args.small else 200)
    batch = args.batch_size or (16 if args.small else 128)
    workers = min(args.workers, 2) if args.small else args.workers
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    checks: list[tuple[str, bool, str]] = []
    figures: list[tuple[str, str]] = []
    started = time.perf_counter()
    print(f"gpu_check on {name}: {arch}, {images} images, {iterations} detector iterations", flush=True)

    cls = classification(device, arch, images, batch, workers)
    ratio = cls["bench_img_s"] / cls["bare_img_s"]
    figures += [("imagenet_cls bench loop", f"{cls['bench_img_s']:.1f} img/s"), ("imagenet_cls bare loop", f"{cls['bare_img_s']:.1f} img/s"),
                ("imagenet_cls bench / bare", f"{ratio:.3f}")]
    checks.append(("imagenet_cls: bench's top-1 equals the bare loop's", cls["same_top1"], f"top-1 error {cls['top1_err']:.2f}"))
    if device == "cuda":
        checks.append(("imagenet_cls: bench / bare throughput >= 0.9", ratio >= 0.9, f"{ratio:.3f}"))
        if "gpu_decode_img_s" in cls:
            figures += [("JPEG decode on the GPU (nvJPEG, batched)", f"{cls['gpu_decode_img_s']:.0f} img/s"),
                        (f"JPEG decode in {workers} CPU workers (PIL)", f"{cls['cpu_decode_img_s']:.0f} img/s")]
        else:
            figures.append(("JPEG decode on the GPU", cls.get("gpu_decode", "not measured")))
    print(f"  classification done ({time.perf_counter() - started:.0f} s)", flush=True)

    from bench.mini.build import MiniSpec, ensure_data

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "BENCH_CACHE": str(work / "cache"), "TQDM_DISABLE": "1"}
        spec = MiniSpec(seed=3, train=60, val=24, epochs=1) if args.small else MiniSpec()
        data = ensure_data(work / "mini", spec)
        torch.manual_seed(0)
        import torchvision

        ckpt = work / "backbone.pth.tar"  # CutMix-PyTorch's format: a DataParallel state_dict under "state_dict"
        torch.save({"state_dict": {f"module.{k}": v for k, v in torchvision.models.get_model(arch, weights=None).state_dict().items()}}, ckpt)
        common = ["run", "--backbone", str(ckpt), "--arch", arch, "--mini", "--data-root", str(data), "--workers", str(min(workers, 8)), "--quiet"]
        train_rates: dict[str, float] = {}
        for task, kind in (("voc_det_frcnn", "frcnn"), ("voc_det_ssd", "ssd")):
            maps, tails = {}, {}
            for amp in ("true", "false"):
                sets = [f"iterations={iterations}", f"checkpoint_every={iterations}", f"steps=[{iterations}]", f"warmup_iters={max(1, iterations // 4)}", f"amp={amp}"]
                if args.small:
                    sets.append("batch_size=2")
                try:
                    record = bench([*common, "--task", task, "--results", str(work / f"{kind}-{amp}"), *[a for s in sets for a in ("--set", s)],
                                    *(["--limit", "8"] if args.small else [])], env)
                except RuntimeError as exc:
                    checks.append((f"{task} ({'bf16' if amp == 'true' else 'fp32'}) trains", False, str(exc)))
                    continue
                train = record["details"][kind]["train"]
                losses = [loss for _, loss in train["loss_history"]]
                precision = train["precision"] if amp == "false" or device == "cuda" else "amp=true (autocast off on a CPU: fp32)"
                checks.append((f"{task} {precision}: finite losses", all(math.isfinite(v) for v in losses), f"last loss {losses[-1]:.3f}"))
                tail = losses[-max(1, len(losses) // 4):]
                tails[amp] = sum(tail) / len(tail)
                metric = next(k for k in record["metrics"] if k.endswith("map_voc07"))
                maps[amp] = record["metrics"][metric]
                figures.append((f"{task} training, {precision}", f"{train['images_per_s']:.1f} img/s, VOC07 mAP {maps[amp]:.2f}"))
                if amp == "false":
                    train_rates[task] = train["images_per_s"]
            note = "" if device == "cuda" else " (CPU: autocast off, both fp32)"
            if len(tails) == 2:
                rel = abs(tails["true"] - tails["false"]) / max(abs(tails["false"]), 1e-12)
                checks.append((f"{task}: bf16 loss within {args.loss_tolerance:.0%} of fp32", rel <= args.loss_tolerance,
                               f"last-quarter mean {tails['true']:.3f} vs {tails['false']:.3f}{note}"))
            if len(maps) == 2:
                delta = abs(maps["true"] - maps["false"])
                checks.append((f"{task}: bf16 mAP within {args.map_tolerance} of fp32", delta <= args.map_tolerance, f"|delta| {delta:.2f}{note}"))
        print(f"  detection done ({time.perf_counter() - started:.0f} s)", flush=True)
        try:
            record = bench([*common, "--task", "cub_loc", "--results", str(work / "wsol"), "--set", "epochs=1", *(["--limit", "8", "--set", "batch_size=8"] if args.small else [])], env)
            ft = record["details"]["finetune"]
            rate = ft["train_images"] * ft["epochs"] / ft["seconds"] if ft["seconds"] else float("nan")
            checks.append(("cub_loc mini epoch: finite loss", all(math.isfinite(v) for v in ft["train_loss"]), f"loss {ft['train_loss'][-1]:.3f}"))
            figures.append(("WSOL fine-tuning (cub_loc --mini, 1 epoch)", f"{rate:.1f} img/s at {record['task']['config']['crop']} px"))
            train_rates["cub_loc"] = rate
        except RuntimeError as exc:
            checks.append(("cub_loc mini epoch", False, str(exc)))
    overhead = cam_overhead(device, arch, 8 if args.small else 64)
    figures.append(("CAM overhead (forward + CAMs vs forward)", f"{overhead:+.1f}%"))
    if device == "cuda":
        checks.append(("CAM overhead <= 10%", overhead <= 10, f"{overhead:+.1f}%"))

    # projections for one backbone of this architecture, full protocols, from the rates above
    from tasks.detection import FRCNN, SSD

    hours = [("imagenet_cls (50,000 val images)", 50_000 / cls["bench_img_s"] / 3600)]
    for task, cfg in (("voc_det_frcnn", FRCNN), ("voc_det_ssd", SSD)):
        if task in train_rates:
            hours.append((f"{task} training ({cfg['iterations']:,} it x batch {cfg['batch_size']})", cfg["iterations"] * cfg["batch_size"] / train_rates[task] / 3600))
    if "cub_loc" in train_rates:
        hours.append(("cub_loc fine-tuning (600 epochs x 5,994 images)", 600 * 5994 / train_rates["cub_loc"] / 3600))
    width = max(len(k) for k in [f for f, _ in figures + hours] + [c for c, _, _ in checks]) + 2
    print(f"\n{'figure'.ljust(width)}value")
    for k, v in figures:
        print(f"{k.ljust(width)}{v}")
    print(f"\n{'projected ' + ('GPU' if device == 'cuda' else 'CPU') + '-hours, one ' + arch}".ljust(width) + "hours (at the measured rate; the mini inputs are smaller than the paper's for detection and WSOL)")
    for k, v in hours:
        print(f"{k.ljust(width)}{v:,.2f}")
    print("\ncheck".ljust(width) + "result")
    for k, ok, detail in checks:
        print(f"{k.ljust(width)}{'ok' if ok else 'FAILED'}  {detail}")
    failed = [k for k, ok, _ in checks if not ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed in {time.perf_counter() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
