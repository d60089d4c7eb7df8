"""Options shared by the commands that name cells (run, validate, check): selection, data and run options."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from bench.errors import BenchError

EXAMPLES = """\
examples:
  bench list backbones 'r50_*'
  bench validate --backbone r50_cutmix --task imagenet_cls --data-root /data
  bench run --backbone r50_cutmix --task imagenet_cls --data-root /data
  bench run --backbone 'r50_*' --task imagenet_cls --limit 500
  bench run --backbone ./new.pth --arch resnet50 --task imagenet_cls
  bench run --backbone mine=runs/a/model_best.pth.tar,theirs=runs/b/model_best.pth.tar --arch resnet50 --task imagenet_cls
  bench run --backbone torchvision:resnet50.IMAGENET1K_V1 --task imagenet_cls
  bench run --backbone 'r50_*' --task voc_det --seeds 3 --launcher slurm --launcher-profile cluster.yaml --dry-run
  bench run --launcher slurm --resubmit-failed
  bench status
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



def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-root", help="folder holding imagenet/, CUB_200_2011/, VOCdevkit/, ... (default: $BENCH_DATA)")
    g.add_argument("--data-path", action="append", metavar="NAME=DIR", help="one dataset's folder, e.g. imagenet=/fast/ILSVRC2012 (repeatable)")


def add_selection_args(p: argparse.ArgumentParser, check: bool = False, required: bool = True) -> None:
    g = p.add_argument_group("what to run")
    if check:
        g.add_argument("--backbone", required=True, help="NEW: the checkpoint to check (card name, torchvision:/timm: name, or a checkpoint file with --arch)")
        g.add_argument("--task", default="*", help="task name, wildcard or comma list (default: every task both have complete results for)")
    else:
        g.add_argument("--backbone", required=required, help="card name or alias, wildcard ('r50_*'), comma list, torchvision:ARCH[.WEIGHTS], timm:ARCH, or checkpoint files (PATH or NAME=PATH, all of --arch)")
        g.add_argument("--task", required=required, help="task name, wildcard or comma list (see 'bench list tasks')")
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
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a task setting (YAML value; group.key inside a group; TASK:KEY=VALUE for one task of a grid); changes the result key")
    g.add_argument("--mini", action="store_true", help="start from the task's settings for the mini benchmark's data (bench demo's; short schedules, small inputs)")
    g.add_argument("--trust-checkpoint", action="store_true", help="allow checkpoints that need code to unpickle (only for files you trust)")



def parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"--set expects KEY=VALUE, got '{item}'", "e.g. --set threshold=0.2")
        scope, colon, _ = key.strip().rpartition(":")
        if colon:
            from tasks import TASKS

            TASKS.get(scope)  # --set TASK:KEY=VALUE: an unknown task is answered before anything runs
        out[key.strip()] = yaml.safe_load(value)
    return out


def preprocessing(args: argparse.Namespace) -> dict[str, Any]:
    given = {"from": args.preprocessing_from, "resize": args.resize, "crop": args.crop, "interpolation": args.interpolation, "mean": args.mean, "std": args.std}
    return {k: v for k, v in given.items() if v is not None}


def run_options(args: argparse.Namespace) -> Any:
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
        preprocessing=preprocessing(args),
        overrides=parse_sets(args.set),
        mini=getattr(args, "mini", False),
        name=args.name,
    )



def parse_seeds(value: str | None) -> list[int] | None:
    """--seeds 0,1,2 (those seeds) or --seeds 3 (0, 1, 2); refuse duplicates and negatives."""
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",")]
    try:
        numbers = [int(v) for v in parts]
    except ValueError:
        raise BenchError(f"--seeds expects a count (3) or a comma list of seeds (0,1,2), got '{value}'", "e.g. --seeds 3 or --seeds 0,1,2") from None
    if len(numbers) == 1 and "," not in value:
        if numbers[0] <= 0:
            raise BenchError(f"--seeds N needs N >= 1, got {numbers[0]}", "e.g. --seeds 3 runs seeds 0, 1, 2")
        return list(range(numbers[0]))
    if any(n < 0 for n in numbers):
        raise BenchError(f"--seeds lists a negative seed: '{value}'", "seeds are 0 or more")
    if len(set(numbers)) != len(numbers):
        raise BenchError(f"--seeds lists a seed twice: '{value}'", "name each seed once")
    return numbers


def add_launcher_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("launcher (bench.launch; README: Running on a cluster)")
    g.add_argument("--launcher", choices=["process", "local", "slurm"], default="process",
                   help="process: run here, in this process (default); local: each cell a job process on this machine, at most --max-parallel at once; "
                        "slurm: each cell a task of a Slurm job array, through submitit")
    g.add_argument("--launcher-profile", metavar="FILE", help="YAML profile: resource defaults, per-task overrides (task names or wildcards), max_parallel, slurm_extra")
    g.add_argument("--dry-run", action="store_true", help="print the arrays, their sbatch headers and cells; submit nothing")
    g.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, then print the result table (local always waits)")
    g.add_argument("--resubmit-failed", action="store_true", help="submit the failed cells of earlier submissions again (no --backbone/--task needed)")
    g.add_argument("--max-parallel", type=int, metavar="N", help="at most N jobs of an array at once (sbatch --array=...%%N; local: N processes; default: local 2, slurm 256)")
    g.add_argument("--partition")
    g.add_argument("--nodes", type=int)
    g.add_argument("--gpus-per-node", type=int, help="GPUs per node; a job runs one DDP process per GPU")
    g.add_argument("--tasks-per-node", type=int, help="processes per node (default: one per GPU, else 1)")
    g.add_argument("--cpus-per-task", type=int)
    g.add_argument("--mem", help="memory per node, e.g. 32G (sbatch --mem)")
    g.add_argument("--time", help="time limit per job: minutes, H:M:S or D-H:M:S")
    g.add_argument("--account")
    g.add_argument("--qos")
    g.add_argument("--constraint")
    g.add_argument("--slurm-extra", action="append", metavar="KEY=VALUE", help="any other sbatch option, e.g. --slurm-extra exclusive=user (repeatable)")


def launch_options(args: argparse.Namespace) -> Any:
    from bench.launch.grid import LaunchOptions
    from bench.launch.resources import load_profile, parse_extra

    if args.max_parallel is not None and args.max_parallel < 1:
        raise BenchError(f"--max-parallel must be 1 or more, got {args.max_parallel}", "e.g. --max-parallel 8")
    flags = {k: getattr(args, k) for k in ("partition", "nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "mem", "time", "account", "qos", "constraint")}
    return LaunchOptions(launcher=args.launcher, profile=load_profile(args.launcher_profile), flags=flags, extra=parse_extra(args.slurm_extra),
                         max_parallel=args.max_parallel, dry_run=args.dry_run, wait=args.wait, resubmit_failed=args.resubmit_failed,
                         command=" ".join(["bench", *sys.argv[1:]]))
