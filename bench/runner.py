"""Running cells: one backbone on one task, cached in the results store.

A cell is resolved (card, weights sha256, task config), looked up in the store (a hit unless
--force), checked for data, run, and written as one record. Nothing is written for a cell that
fails or is interrupted.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.cards import BackboneCard, expand_backbones, resolve_backbone
from bench.errors import BenchError, one_line
from bench.paths import cache_dir
from bench.settings import check_config
from bench.record import build_record
from bench.store import ResultsStore, cell_key, config_hash
from bench.task import DataCheck, DataLocator, RunContext, Task
from tasks import TASKS


@dataclass
class RunOptions:
    data: DataLocator = field(default_factory=DataLocator)
    results: Path = Path("results")
    device: str = "auto"
    batch_size: int = 64
    workers: int = 2
    limit: int | None = None
    seed: int = 0
    force: bool = False
    trust: bool = False
    progress: bool = True  # bars (a terminal)
    log: bool = False  # stage sizes, estimates and steady progress lines on stderr (not --quiet)
    arch: str | None = None
    num_classes: int | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)  # --preprocessing-from / --resize / --crop / --mean / --std / --interpolation
    overrides: dict[str, Any] = field(default_factory=dict)
    mini: bool = False  # start from each task's settings for the mini benchmark's data (--mini)
    name: str | None = None  # --name: the display name of the one checkpoint file named


@dataclass
class CellOutcome:
    backbone: str
    task: str
    record: dict[str, Any] | None = None
    cached: bool = False
    error: str | None = None


def select_tasks(value: str) -> list[Task]:
    return [entry.load()() for entry in TASKS.select(value)]


def resolve_config(task: Task, card: BackboneCard, opts: RunOptions) -> dict[str, Any]:
    """The task's protocol parameters with --set overrides, plus what else changes the numbers."""
    config = task.default_config()
    overrides = {}
    for key, value in opts.overrides.items():
        # 'task:key=v' sets key for that task only (one --set list for a grid of several tasks)
        scope, sep, rest = key.rpartition(":")
        if sep:
            TASKS.get(scope)  # a typo in the task's name is answered, never ignored
            if scope == task.name:
                overrides[rest] = value
        else:
            overrides[key] = value
    if opts.mini:
        mini = TASKS.get(task.name).mini
        if mini is None:
            raise BenchError(f"task {task.name} has no mini variant", "drop --mini, or see 'bench list tasks'")
        overrides = {**mini, **overrides}
    # a preset stands for several settings; --set and --mini values win over it
    for key in [k for k in overrides if k.split(".")[-1] == "preset"]:
        group = key[: -len("preset")]
        overrides = {**{group + k: v for k, v in task.preset(group.rstrip("."), str(overrides[key])).items()}, **overrides}
    specs = task.settings()
    for key, value in overrides.items():
        # 'a.b=v' sets b inside the setting group a (e.g. voc_det's frcnn.iterations)
        *groups, leaf = key.split(".")
        target = config
        for group in groups:
            target = target.get(group) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                break
        if not isinstance(target, dict) or leaf not in target:
            raise BenchError(f"task {task.name} has no setting {key}", f"its settings: {', '.join(_setting_names(config)) or 'none'}")
        target[leaf] = value
    check_config(task.name, config, specs)  # every value typed and in range, defaults and --mini values too
    task.validate(config)
    config["preprocessing"] = card.to_dict()["preprocessing"]
    config["num_classes"] = card.num_classes
    config["limit"] = opts.limit
    return config


def _setting_names(config: dict[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key, value in sorted(config.items()):
        names += _setting_names(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return names


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {device} was asked for but no CUDA device is available", "pass --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise BenchError(f"unknown device '{device}'", "use cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int) -> dict[str, Any]:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return {"seed": seed, "cudnn_deterministic": True, "cudnn_benchmark": False}


def check_data(task: Task, opts: RunOptions, card: BackboneCard, config: dict[str, Any]) -> DataCheck:
    """The task's data check. When it fails on a task that keeps the classifier, a checkpoint whose
    classifier has another size is the better explanation (--num-classes N): say that instead."""
    try:
        return task.check(opts.data, card, config)
    except BenchError as data_error:
        if task.replaces_head or card.weights.format == "timm":
            raise
        from bench.backbones.build import load_backbone_from
        from bench.backbones.download import weights_path

        try:
            path = weights_path(card, progress=False, fetch=False)
        except BenchError:
            raise data_error from None  # no local weights to ask
        load_backbone_from(card, str(path), "", None, False, opts.trust)  # raises the checkpoint's own error, if it has one
        raise


def matching_record(store: ResultsStore, task_name: str, card: BackboneCard, sha: str, opts: RunOptions) -> tuple[Any, str | None]:
    """The stored record of `task_name` that another task may take a number from (a clean error):
    the one cell that task would have for this checkpoint (card name and weights), at its current
    version, with its default settings and this run's preprocessing, unlimited, on the data it
    would score now (the fingerprint of what is on disk). Returns (record or None, why none was
    used when the store holds another record of that checkpoint and task)."""
    task = TASKS.get(task_name).load()()
    newest = store.newest(card.name, sha, task_name)
    try:
        config = resolve_config(task, card, RunOptions(data=opts.data, seed=opts.seed))
        data = task.check(opts.data, card, config)
    except BenchError as exc:
        return None, (f"stored {task_name} record {newest['run_id']} not used: its data cannot be checked against what is on disk ({exc.message})" if newest else None)
    key = cell_key(card.name, sha, task.name, task.version, config_hash(config), opts.seed if task.seeded else None, data.fingerprint)
    found = store.lookup(key)
    if found is not None and not found["limited"]:
        return found, None
    if newest is None:
        return None, None
    why = []
    if newest["task"]["version"] != task.version:
        why.append(f"task version {newest['task']['version']}, not {task.version}")
    if newest["task"]["config"].get("preprocessing") != config["preprocessing"]:
        why.append("other preprocessing")
    elif newest["task"]["config_hash"] != config_hash(config):
        why.append("other settings")
    if newest["data"]["fingerprint"] != data.fingerprint:
        why.append(f"other data ({newest['data']['n_samples']} images then, {data.n_samples} now)")
    return None, f"stored {task_name} record {newest['run_id']} not used: {', '.join(why) or 'another cell'} than this run needs"


@dataclass
class CellPlan:
    """What identifies a cell before it runs: its card, settings, data and weights."""
    card: BackboneCard
    config: dict[str, Any]
    cfg_hash: str
    data: DataCheck
    path: Any
    sha: str
    preloaded: Any
    key: str


def prepare_cell(spec: str, task: Task, opts: RunOptions, name: str | None = None, progress: bool = False) -> CellPlan:
    """Resolve the card and settings, check the data (before the cache: a cached number is only
    shown for the data it was computed on) and identify the weights; raises BenchError."""
    from bench.backbones.build import weights_identity

    card = resolve_backbone(spec, opts.arch, opts.num_classes, opts.preprocessing, name)
    config = resolve_config(task, card, opts)
    cfg_hash = config_hash(config)
    data = check_data(task, opts, card, config)
    path, sha, preloaded = weights_identity(card, progress)
    key = cell_key(card.name, sha, task.name, task.version, cfg_hash, opts.seed if task.seeded else None, data.fingerprint)
    return CellPlan(card, config, cfg_hash, data, path, sha, preloaded, key)


def run_cell(spec: str, task: Task, opts: RunOptions, store: Any, device: str, rank: int = 0, world_size: int = 1,
             name: str | None = None, launch: dict[str, Any] | None = None) -> CellOutcome:
    """Run (or fetch from the store) one backbone x task cell. Raises BenchError on user errors.
    `store`: a ResultsStore, or what a launched job writes through (bench.store.incoming.JobStore);
    `launch`: what the record keeps of the job that ran it (bench.launch.job)."""
    from bench.backbones.build import load_backbone_from
    from bench.environment import device_name, git_state, package_versions

    started = time.perf_counter()
    plan = prepare_cell(spec, task, opts, name, opts.progress and rank == 0)
    card, config, cfg_hash, data, path, sha, preloaded, key = plan.card, plan.config, plan.cfg_hash, plan.data, plan.path, plan.sha, plan.preloaded, plan.key
    cached = store.lookup(key) if store is not None and not opts.force else None
    if world_size > 1:
        from bench.evaluation import broadcast

        cached = broadcast(cached)
    if cached is not None:
        return CellOutcome(spec, task.name, cached, cached=True)
    backbone = load_backbone_from(card, path, sha, preloaded, task.replaces_head, opts.trust)
    loaded = time.perf_counter()
    determinism = seed_everything(opts.seed)
    artifact_dir = cache_dir() / "artifacts" / task.name / key[:16]

    def stored(task_name: str) -> Any:
        found = matching_record(store, task_name, card, sha, opts) if store is not None else (None, None)
        if world_size > 1:
            from bench.evaluation import broadcast

            found = broadcast(found)
        return found

    ctx = RunContext(
        stored=stored, backbone=backbone, config=config, data=opts.data, device=device, batch_size=opts.batch_size,
        workers=opts.workers, limit=opts.limit, seed=opts.seed, progress=opts.progress and rank == 0,
        artifact_dir=artifact_dir, rank=rank, world_size=world_size, task=task.name, weights_sha256=sha, log=opts.log and rank == 0,
    )
    from bench.evaluation import run_plan

    result = run_plan(task, task.plan(ctx), ctx)  # the task prepares what is scored; the loop is the runner's
    finished = time.perf_counter()
    now = datetime.now(timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%S") + f"-{key[:8]}"
    record = build_record(
        run_id=run_id,
        cell_key=key,
        created_at=now.isoformat(timespec="seconds"),
        status="complete",
        backbone={"name": card.name, "spec": spec, "arch": card.arch, "sha256": sha, "path": path,
                  "card": card.to_dict(), "load_report": backbone.report.to_dict()},
        task={"name": task.name, "version": task.version, "config": config, "config_hash": cfg_hash, "seeded": task.seeded, "sample_key": list(task.sample_key)},
        metrics=result.metrics,
        # the full spec, convention included; "order": the declared position (JSON in the store sorts keys)
        metric_meta={name: {**task.metric_spec(name).to_dict(), "order": k} for k, name in enumerate(result.metrics)},
        reported=card.reported(task.reported_key) if task.reported_key else {},
        seed=opts.seed,
        determinism=determinism,
        n_samples={"total": result.n_total, "evaluated": result.n_evaluated},
        data={"fingerprint": data.fingerprint, "n_samples": data.n_samples, "summary": data.summary},
        limited=result.n_evaluated < result.n_total,  # a --limit at or above the split's size scores everything
        device={"type": device, "name": device_name(device), "world_size": world_size},
        batch_size=opts.batch_size,
        workers=opts.workers,
        env={"versions": package_versions(), "git": git_state()},
        timing={"load_s": round(loaded - started, 3), "task_s": round(finished - loaded, 3), "total_s": round(finished - started, 3)},
        artifacts={"artifact_dir": str(artifact_dir) if artifact_dir.exists() else None},
        details=result.details,
    )
    if launch:
        record["launch"] = launch
    if store is not None:  # rank 0 only
        store.put(record, result.samples, replace=opts.force)
    return CellOutcome(spec, task.name, record)


def check_names(backbones: str, tasks: str) -> None:
    """Task and card names, checked before anything imports torch: a typo is answered at once."""
    from bench.cards import find_card, looks_like_path, split_display_name

    TASKS.select(tasks)
    for spec in expand_backbones(backbones):
        _, spec = split_display_name(spec)
        if not (spec.startswith(("torchvision:", "timm:")) or looks_like_path(spec)):
            find_card(spec)


def display_names(specs: list[str], opts: RunOptions) -> dict[str, str | None]:
    """spec -> the display name --name gives it (None: its own)."""
    from bench.cards import looks_like_path, split_display_name

    names: dict[str, str | None] = {spec: None for spec in specs}
    if opts.name:
        files = [s for s in specs if split_display_name(s)[0] is None and looks_like_path(s) and not s.endswith((".yaml", ".yml"))]
        if len(files) != 1:
            raise BenchError(f"--name names one checkpoint file, but {len(files)} were given",
                             "name each file in the list instead: --backbone mine=a.pth,theirs=b.pth")
        names[files[0]] = opts.name
    return names


def resolve_grid_names(specs: list[str], opts: RunOptions) -> dict[str, str | None]:
    """display_names, after checking that every backbone resolves and that no two of them share a
    name (a table row and a cell key each stand for one)."""
    names = display_names(specs, opts)
    seen: dict[str, str] = {}
    for spec in specs:
        card = resolve_backbone(spec, opts.arch, opts.num_classes, opts.preprocessing, names[spec])
        if card.name in seen and seen[card.name] != spec:
            raise BenchError(f"backbones {seen[card.name]} and {spec} would both be called '{card.name}'",
                             "give the files names of their own: --backbone a=runs/a/model_best.pth.tar,b=runs/b/model_best.pth.tar")
        seen[card.name] = spec
    return names


def run_grid(backbones: str, tasks: str, opts: RunOptions, debug: bool = False) -> list[CellOutcome]:
    """Every backbone x task cell; a failing cell is reported and the others still run."""
    from bench.evaluation import init_distributed, world

    task_list = select_tasks(tasks)
    specs = expand_backbones(backbones)
    names = resolve_grid_names(specs, opts)  # every name of the grid resolves before any cell runs: a typo is not found after the work
    device = resolve_device(opts.device)
    rank, size = world()
    init_distributed(device)
    store = ResultsStore.open(opts.results) if rank == 0 else None
    outcomes = []
    try:
        for spec in specs:
            for task in task_list:
                try:
                    outcomes.append(run_cell(spec, task, opts, store, device, rank, size, names[spec]))
                except BenchError as exc:
                    if debug or (len(specs) * len(task_list) == 1):
                        raise
                    outcomes.append(CellOutcome(spec, task.name, error=one_line(exc)))
    finally:
        if store is not None:
            store.close()
    return outcomes
