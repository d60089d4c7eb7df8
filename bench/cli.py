"""The `bench` command line. Heavy modules (torch) are imported inside the commands that need them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from bench import __version__
from bench.errors import BenchError, one_line

EXAMPLES = """\
examples:
  bench list backbones 'r50_*'
  bench validate --backbone r50_cutmix --task imagenet_cls --data-root /data
  bench run --backbone r50_cutmix --task imagenet_cls --data-root /data
  bench run --backbone 'r50_*' --task imagenet_cls --limit 500
  bench run --backbone ./new.pth --arch resnet50 --task imagenet_cls
  bench run --backbone mine=runs/a/model_best.pth.tar,theirs=runs/b/model_best.pth.tar --arch resnet50 --task imagenet_cls
  bench run --backbone torchvision:resnet50.IMAGENET1K_V1 --task imagenet_cls
  bench report --backbones 'r50_*'
  bench list results --results ~/.cache/bench/mini/results
  bench export --format json > results.json
  bench demo

environment: BENCH_DATA (data root), BENCH_RESULTS (results folder), BENCH_CACHE (weights and
artifacts, default ~/.cache/bench), BENCH_CARDS (extra folders of backbone cards)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (the usage is in --help)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"bench: error: {message} (see '{self.prog} --help')\n")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-root", help="folder holding imagenet/, CUB_200_2011/, VOCdevkit/, ... (default: $BENCH_DATA)")
    g.add_argument("--data-path", action="append", metavar="NAME=DIR", help="one dataset's folder, e.g. imagenet=/fast/ILSVRC2012 (repeatable)")


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--backbone", required=True, help="card name or alias, wildcard ('r50_*'), comma list, torchvision:ARCH[.WEIGHTS], timm:ARCH, or checkpoint files (PATH or NAME=PATH, all of --arch)")
    g.add_argument("--task", required=True, help="task name, wildcard or comma list (see 'bench list tasks')")
    g.add_argument("--arch", help="architecture of the checkpoint files named: torchvision name (resnet50), pyramidnet200 (CIFAR, CutMix-PyTorch's), timm:NAME or module:callable")
    g.add_argument("--name", help="display name of the one checkpoint file named, used in tables and the store (default: its file name); "
                                  "for several files write NAME=PATH in --backbone. The name is part of the cell, like a card's: the same file under another name runs again")
    g.add_argument("--num-classes", type=int, help="classifier outputs of a checkpoint file (default: the card's, 1000)")
    g = p.add_argument_group("preprocessing (a checkpoint file gets resize 256, crop 224, bilinear, ImageNet mean/std unless told)")
    g.add_argument("--preprocessing-from", metavar="CARD", help="use this card's eval preprocessing (e.g. mini_cutmix for a copy of its weights)")
    g.add_argument("--resize", type=int, help="resize the shorter side to N")
    g.add_argument("--crop", type=int, help="center-crop N x N")
    g.add_argument("--interpolation", choices=["nearest", "bilinear", "bicubic"])
    g.add_argument("--mean", metavar="R,G,B", help="normalisation mean, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", metavar="R,G,B", help="normalisation std, e.g. 0.229,0.224,0.225")
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a task setting (YAML value; group.key inside a group); changes the result key")
    g.add_argument("--mini", action="store_true", help="start from the task's settings for the mini benchmark's data (bench demo's; short schedules, small inputs)")
    g.add_argument("--trust-checkpoint", action="store_true", help="allow checkpoints that need code to unpickle (only for files you trust)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bench",
        description="Evaluation and transfer benchmarks for pretrained vision backbones.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    # the same two flags after the subcommand (bench run ... --debug); SUPPRESS keeps the value set before it
    common = Parser(add_help=False)
    flags = common.add_argument_group("output")
    flags.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    flags.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")

    def _sub(group: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return group.add_parser(name, parents=[common], **kwargs)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _sub(sub, "list", help="list backbones, tasks, a task's settings or stored results",
             description="List backbone cards or tasks, optionally filtered by a wildcard, every setting of one task (its type, default, mini value and meaning), "
                         "or the results stored (backbone, task, settings that differ from the defaults, seed, date, limited, samples file).",
             epilog="examples:\n  bench list backbones 'r50_*'\n  bench list tasks\n  bench list settings cub_loc\n"
                    "  bench list results 'mini_*' --tasks imagenet_c --results ~/.cache/bench/mini/results", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["backbones", "tasks", "settings", "results"])
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'r50_*' (settings: the task's name; results: backbones)")
    p.add_argument("--tasks", default="*", help="results: wildcard or comma list of task names")
    p.add_argument("--results", help="results: the results folder (default: $BENCH_RESULTS or ./results)")

    p = _sub(sub, "validate", help="check backbone, task and data without running", description="Resolve backbones, tasks and dataset paths, and say what is missing, without running anything.")
    _add_selection_args(p)
    _add_data_args(p)
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--limit", type=int, help="as for run; shows whether the cell is cached")
    p.add_argument("--seed", type=int, default=0)

    p = _sub(sub, "run", help="run tasks on backbones and store the results", description="Run every backbone x task cell; cached cells are not re-run unless --force.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_selection_args(p)
    _add_data_args(p)
    g = p.add_argument_group("run")
    g.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    g.add_argument("--limit", type=int, help="score N evenly spaced samples of the split (marked limited; never in paper tables)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when available)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")
    g.add_argument("--force", action="store_true", help="re-run cells that are already stored")

    p = _sub(
        sub, "report", help="tables (and figures) of stored results",
        description="Cross-backbone tables of stored results; published numbers in [brackets]. Limited runs are left out unless --include-limited. "
                    "--figure cam draws the CAMs of each backbone's fine-tuned WSOL classifier on the same images instead.",
        epilog="examples:\n  bench report --backbones 'r50_*'\n"
               "  bench report --figure cam --backbones 'r50_*' --tasks cub_loc --data-root /data --output reports/cam_cub.png\n"
               "  bench report --figure robustness --backbones 'r50_*' --output reports/robustness.png\n"
               "  bench report --figure ood --backbones 'pyramidnet200_*' --tasks cifar100_ood --output reports/ood.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--backbones", default="*", help="wildcard or comma list of backbone names")
    p.add_argument("--tasks", default="*", help="wildcard or comma list of task names")
    p.add_argument("--include-limited", action="store_true")
    p.add_argument("--format", choices=["md"], default="md")
    p.add_argument("--output", help="also write the table to this file; with --figure, the PNG (default reports/figures/cam_<task>.png, robustness.png or ood.png)")
    g = p.add_argument_group("figures")
    g.add_argument("--figure", choices=["cam", "robustness", "ood"], help="cam: a PNG grid, one row per backbone, CAM with predicted (green) and GT (red) boxes; "
                   "robustness: occlusion and in-between curves, error per corruption, reliability diagrams, from the stored records; "
                   "ood: histograms of in- vs out-of-distribution scores per backbone and set, and ROC curves")
    g.add_argument("--score", default="msp", help="the OOD figure's score (msp, max_logit, energy, odin; default msp)")
    g.add_argument("--images", type=int, default=6, help="images per row of the figure (evenly spaced over the split)")
    g.add_argument("--device", default="cpu", help="device for the figure's forward passes")
    _add_data_args(p)

    p = _sub(sub, "export", help="write stored records out", description="Write every stored result record out.")
    p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--format", choices=["json"], default="json")
    p.add_argument("--output", help="file to write (default: standard output)")

    p = _sub(sub, "score", help="score predictions made anywhere (prints JSON)", description="Score predictions saved in the field's standard formats, with the functions bench's tasks use.")
    score = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    q = _sub(
        score, "wsol", help="MaxBoxAcc / MaxBoxAccV2 / PxAP of saved score maps (wsolevaluation's format)",
        description="Score <image_id>.npy score maps against wsolevaluation metadata (image_ids, class_labels, image_sizes, localization): "
                    "MaxBoxAcc per IoU threshold for boxes (CUB, ILSVRC), PxAP for masks (OpenImages30k).",
        epilog="examples:\n  bench score wsol --scoremaps scoremaps/ --metadata metadata/CUB/test\n"
               "  bench score wsol --scoremaps scoremaps/ --metadata metadata/CUB/test --predictions preds.csv\n"
               "  bench score wsol --scoremaps scoremaps/ --metadata metadata/CUB/test --iou 50 --largest-contour   # MaxBoxAcc (V1)\n"
               "  bench score wsol --scoremaps scoremaps/ --metadata metadata/OpenImages/test --mask-root dataset/OpenImages",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--scoremaps", required=True, help="folder of <image_id>.npy maps, 2-D floats in [0, 1]")
    q.add_argument("--metadata", required=True, help="wsolevaluation metadata folder of the split")
    q.add_argument("--interval", type=float, default=0.001, help="CAM threshold interval (default 0.001, wsolevaluation's evaluate_wsol default)")
    q.add_argument("--iou", default="30,50,70", help="IoU thresholds in percent (default 30,50,70: MaxBoxAccV2)")
    q.add_argument("--largest-contour", action="store_true", help="use only the largest contour (MaxBoxAcc V1: with --iou 50)")
    q.add_argument("--predictions", help="predicted class per image ('<image_id>,<class>' lines or a JSON object): adds top-1 MaxBoxAcc, where the class must be right too")
    q.add_argument("--mask-root", help="for mask metadata (OpenImages30k): the folder the mask paths are relative to; gives PxAP")

    q = _sub(
        score, "voc", help="VOC07 mAP (11-point and area), COCO-style AP and per-class AP of detections",
        description="Score detections against a VOCdevkit split, as the devkit does (11-point AP at IoU 0.5, difficult objects ignored).",
        epilog="examples:\n  bench score voc --detections results/ --devkit /data/VOCdevkit          # comp4_det_test_<class>.txt files\n"
               "  bench score voc --detections dets.json --devkit /data/VOCdevkit --split 2007:test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--detections", required=True, help="folder of comp4_det_<split>_<class>.txt files ('image_id score x1 y1 x2 y2', 1-based) or a COCO-style results .json")
    q.add_argument("--devkit", required=True, help="the VOCdevkit folder")
    q.add_argument("--split", default="2007:test", help="YEAR:SPLIT to score against (default 2007:test); result files of other splits are left out")
    q.add_argument("--allow-missing-classes", action="store_true", help="score a class with no result file as AP 0 (otherwise refused)")

    q = _sub(
        score, "captions", help="BLEU-1..4, METEOR, ROUGE-L, CIDEr of captions (coco-caption's scorers)",
        description="Score a COCO-format results file ([{\"image_id\": int, \"caption\": str}]) against a COCO captions file, as coco-caption does "
                    "(PTB tokenizer, pycocoevalcap's scorers; SPICE off). Needs Java for the tokenizer and METEOR; without it a pure-Python "
                    "tokenizer stands in, METEOR is reported as unavailable, and the output says so.",
        epilog="examples:\n  bench score captions --results captions_val2014_results.json --annotations coco/annotations/captions_val2014.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--results", required=True, help="a JSON list of {image_id, caption}, one per image")
    q.add_argument("--annotations", required=True, help="a COCO captions file (captions_val2014.json)")

    q = _sub(
        score, "mce", help="ImageNet-C mCE and relative mCE of per-corruption x severity errors",
        description="mCE (each corruption's mean error over severities 1-5 divided by AlexNet's, averaged over the 15 benchmark corruptions), "
                    "relative mCE (with --clean-error), and the four extra corruptions' mean error apart, from a JSON or CSV of errors in percent.",
        epilog="examples:\n  bench score mce --errors errors.json --clean-error 23.85\n  bench score mce --errors errors.csv    # lines corruption,severity,error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--errors", required=True, help="JSON {corruption: {severity: error %}} (or a list of five) or CSV 'corruption,severity,error'")
    q.add_argument("--clean-error", type=float, help="the model's clean top-1 error in percent: adds relative CE and relative mCE")

    q = _sub(
        score, "ood", help="OOD detection metrics of saved scores: TNR/FPR at TPR 95%, detection acc., AUROC, AUPR",
        description="OOD detection metrics of in- and out-of-distribution scores saved by any tool (higher = more in-distribution, e.g. max "
                    "softmax probability): TNR at TPR 95% and detection accuracy (ODIN's conventions, in-distribution positive), AUROC, "
                    "AUPR-in/out (average precision), FPR at TPR 95% (in-distribution positive) and OpenOOD v1.5's FPR@95 (OOD positive), per "
                    "OOD file and their mean; or the same from the samples file of a bench OOD run (--samples).",
        epilog="examples:\n  bench score ood --in cifar100_msp.npy --out lsun_msp.npy isun_msp.npy\n"
               "  bench score ood --in in.txt --out out.txt --names svhn\n"
               "  bench score ood --samples results/samples/<run id>.jsonl --score energy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--in", dest="in_scores", help="in-distribution scores: a 1-D .npy array, or text with one number per line")
    q.add_argument("--out", dest="out_scores", nargs="+", help="out-of-distribution scores, one file per OOD set")
    q.add_argument("--names", nargs="+", help="names of the --out sets (default: their file names)")
    q.add_argument("--samples", help="instead of --in/--out: the samples file of a cifar100_ood or imagenet_ood run")
    q.add_argument("--score", help="with --samples: which stored score (msp, max_logit, energy, odin; default msp)")

    p = _sub(sub, "demo", help="the embedded mini benchmark, offline", description="Build small data sets of handwritten digits in the real layouts, train a small ResNet four ways on them, evaluate the four with every task "
                                   "that has a mini variant, and write reports/demo/README.md. One line per stage on stderr; at the end the comparison table, "
                                   "the results and data folders and the commands to try next.")
    p.add_argument("--workdir", help="where the mini data and results go (default: $BENCH_CACHE/mini)")
    p.add_argument("--output", default="reports/demo", help="where the table is written")
    p.add_argument("--seed", type=int, default=0, help="generator and training seed (a new seed builds new data and backbones)")
    p.add_argument("--train-scenes", type=int, default=2000, help="training scenes (default 2000)")
    p.add_argument("--val-scenes", type=int, default=1000, help="validation scenes (default 1000)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs per recipe (default 8)")
    return parser


def _parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--set expects KEY=VALUE, got '{item}'", "e.g. --set threshold=0.2")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _preprocessing(args: argparse.Namespace) -> dict[str, Any]:
    given = {"from": args.preprocessing_from, "resize": args.resize, "crop": args.crop, "interpolation": args.interpolation, "mean": args.mean, "std": args.std}
    return {k: v for k, v in given.items() if v is not None}


def _options(args: argparse.Namespace) -> Any:
    from bench.paths import parse_overrides, results_dir
    from bench.runner import RunOptions
    from bench.task import DataLocator

    for flag in ("limit", "batch_size", "workers", "num_classes"):
        value = getattr(args, flag, None)
        if flag == "workers" and value is not None and value < 0:
            raise BenchError(f"--workers must be 0 or more, got {value}", "--workers 0 loads data in the main process; N > 0 starts N loader processes")
        if value is not None and (value < 0 or (value == 0 and flag != "workers")):
            raise BenchError(f"--{flag.replace('_', '-')} must be positive, got {value}", "fix the value")
    return RunOptions(
        data=DataLocator(args.data_root, parse_overrides(args.data_path)),
        results=results_dir(args.results),
        device=getattr(args, "device", "auto"),
        batch_size=getattr(args, "batch_size", 64),
        workers=getattr(args, "workers", 0),
        limit=args.limit,
        seed=args.seed,
        force=getattr(args, "force", False),
        trust=args.trust_checkpoint,
        progress=not args.quiet and sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE"),
        log=not args.quiet,
        arch=args.arch,
        num_classes=args.num_classes,
        preprocessing=_preprocessing(args),
        overrides=_parse_sets(args.set),
        mini=getattr(args, "mini", False),
        name=args.name,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import check_names

    check_names(args.backbone, args.task)  # before torch is imported
    from bench.evaluation import world
    from bench.runner import run_grid
    from bench.tables import run_table

    opts = _options(args)
    outcomes = run_grid(args.backbone, args.task, opts, debug=args.debug)
    if world()[0] == 0:
        print(run_table(outcomes))
        failed = [o for o in outcomes if o.error]
        for o in failed:
            print(f"bench: error: {o.backbone} x {o.task}: {o.error}", file=sys.stderr)
        return 1 if failed else 0
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Resolve every cell as run would, without loading weights or running; list problems."""
    from bench.backbones.download import verify_sha256, weights_path
    from bench.cards import expand_backbones, resolve_backbone
    from bench.runner import check_names, display_names, resolve_config, select_tasks
    from bench.store import DB_NAME, ResultsStore, cell_key, config_hash

    check_names(args.backbone, args.task)  # before torch is imported
    opts = _options(args)
    tasks = select_tasks(args.task)
    problems = 0
    store = ResultsStore.open(opts.results, write=False) if (opts.results / DB_NAME).is_file() else None
    specs = expand_backbones(args.backbone)
    names = display_names(specs, opts)
    for spec in specs:
        try:
            card = resolve_backbone(spec, opts.arch, opts.num_classes, opts.preprocessing, names[spec])
        except BenchError as exc:
            print(f"✗ {spec}: {one_line(exc)}")
            problems += 1
            continue
        sha = None
        if card.weights.format == "timm":
            print(f"✓ {card.name}: timm weights (fetched by timm at run time)")
        else:
            try:
                path = weights_path(card, progress=False, fetch=False)
                sha = verify_sha256(path, card.weights.sha256)
                print(f"✓ {card.name}: weights {path} (sha256 {sha[:12]})")
            except BenchError as exc:
                print(f"✗ {card.name}: {one_line(exc)}")
                problems += 1
        for task in tasks:
            try:
                config = resolve_config(task, card, opts)
                data = task.check(opts.data, card, config)
                state = ""
                if sha and store is not None:  # the same identity as bench run's (bench.store.cell_key)
                    key = cell_key(card.name, sha, task.name, task.version, config_hash(config), opts.seed if task.seeded else None, data.fingerprint)
                    state = " [cached]" if store.lookup(key) else " [to run]"
                print(f"  ✓ {task.name} v{task.version}: " + "; ".join(f"{k}: {v}" for k, v in data.summary.items()) + state)
            except BenchError as exc:
                print(f"  ✗ {task.name}: {one_line(exc)}")
                problems += 1
    if problems:
        print(f"bench: error: {problems} problem(s) found", file=sys.stderr)
    return 1 if problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.paths import results_dir
    from bench.registry import matches
    from bench.store import ResultsStore
    from bench.tables import report_table

    store = ResultsStore.open(results_dir(args.results), write=False)
    records = [
        r for r in store.records(include_limited=args.include_limited)
        if matches(r["backbone"]["name"], args.backbones) and matches(r["task"]["name"], args.tasks)
    ]
    store.close()
    if not records:
        raise BenchError(f"no stored results match backbones '{args.backbones}' and tasks '{args.tasks}' in {store.path}", "run 'bench run' first (limited runs need --include-limited)")
    if args.figure == "cam":
        from bench.figures import cam_figure
        from bench.paths import parse_overrides
        from bench.task import DataLocator

        task = records[-1]["task"]["name"]
        output = Path(args.output or f"reports/figures/cam_{task}.png")
        path = cam_figure(records, DataLocator(args.data_root, parse_overrides(args.data_path)), output, args.images, args.device)
        print(f"wrote {path} ({len({r['backbone']['name'] for r in records})} backbones x {args.images} images)")
        return 0
    if args.figure == "robustness":
        from bench.figures import robustness_figure

        path = robustness_figure(records, Path(args.output or "reports/figures/robustness.png"))
        print(f"wrote {path} ({len({r['backbone']['name'] for r in records})} backbone(s))")
        return 0
    if args.figure == "ood":
        from bench.figures import ood_figure

        path = ood_figure(records, Path(args.output or "reports/figures/ood.png"), args.score)
        print(f"wrote {path} ({len({r['backbone']['name'] for r in records})} backbone(s))")
        return 0
    table = report_table(records)
    print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(table + "\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.paths import results_dir
    from bench.store import ResultsStore

    store = ResultsStore.open(results_dir(args.results), write=False)
    text = json.dumps(list(store.records()), indent=2, sort_keys=True)
    store.close()
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bench.demo import run_demo

    progress = not args.quiet and sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE")
    from bench.mini.build import MiniSpec

    for flag in ("train_scenes", "val_scenes", "epochs"):
        if getattr(args, flag) <= 0:
            raise BenchError(f"--{flag.replace('_', '-')} must be positive", "fix the value")
    spec = MiniSpec(seed=args.seed, train=args.train_scenes, val=args.val_scenes, epochs=args.epochs)
    return run_demo(Path(args.workdir) if args.workdir else None, Path(args.output), progress=progress, spec=spec, log=not args.quiet)


def cmd_score(args: argparse.Namespace) -> int:
    from bench.score import score_captions, score_voc, score_wsol

    if args.what == "mce":
        from bench.score import score_mce

        print(json.dumps(score_mce(Path(args.errors), args.clean_error), indent=2))
        return 0
    if args.what == "ood":
        from bench.score import score_ood, score_ood_samples

        if args.samples:
            if args.in_scores or args.out_scores:
                raise BenchError("--samples replaces --in and --out", "pass either --samples FILE or --in FILE --out FILE ...")
            print(json.dumps(score_ood_samples(Path(args.samples), args.score or "msp"), indent=2))
            return 0
        if args.score:
            raise BenchError("--score picks a score stored in a --samples file", "with --in/--out, save the score you want in the files")
        lacking = [flag for flag, value in (("--in FILE", args.in_scores), ("--out FILE [FILE ...]", args.out_scores)) if not value]
        if lacking:
            raise BenchError(f"bench score ood needs {' and '.join(lacking)} (or --samples FILE)", "e.g. bench score ood --in in.npy --out ood1.npy ood2.npy")
        print(json.dumps(score_ood(Path(args.in_scores), [Path(p) for p in args.out_scores], args.names), indent=2))
        return 0
    if args.what == "captions":
        print(json.dumps(score_captions(Path(args.results), Path(args.annotations)), indent=2))
        return 0
    if args.what == "voc":
        print(json.dumps(score_voc(Path(args.detections), Path(args.devkit), args.split, args.allow_missing_classes), indent=2))
        return 0

    try:
        ious = tuple(int(v) for v in args.iou.split(","))
    except ValueError:
        raise BenchError(f"--iou expects comma-separated integers, got '{args.iou}'", "e.g. --iou 30,50,70") from None
    if not all(0 < v <= 100 for v in ious):
        raise BenchError(f"--iou values must be percentages in (0, 100], got '{args.iou}'", "e.g. --iou 30,50,70")
    result = score_wsol(Path(args.scoremaps), Path(args.metadata), args.interval, ious, multi_contour=not args.largest_contour,
                        predictions=Path(args.predictions) if args.predictions else None, mask_root=Path(args.mask_root) if args.mask_root else None)
    print(json.dumps(result, indent=2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench.commands.listing import cmd_list as run

    return run(args)


COMMANDS = {"score": cmd_score, "list": cmd_list, "validate": cmd_validate, "run": cmd_run, "report": cmd_report, "export": cmd_export, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that stopped early (bench export | head) shows here, not at exit
        return code
    except BrokenPipeError:  # the reader has all it wanted: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    except BenchError as exc:
        if args.debug:
            raise
        print(f"bench: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; nothing was stored for the unfinished cell", file=sys.stderr)
        return 130
    except Exception as exc:  # a user should still get one line; --debug shows where
        if args.debug or os.environ.get("BENCH_DEBUG"):
            raise
        if "Original Traceback" in str(exc) and "BenchError" in str(exc):
            print(f"bench: error: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"bench: error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
