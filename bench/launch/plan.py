"""A grid as cells and job arrays: which cells to submit (not those stored or already submitted
and alive), with which resources, grouped into arrays of one resource shape each, split at the
cluster's MaxArraySize."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError
from bench.launch.resources import Resources, format_minutes


@dataclass
class Cell:
    id: str  # the cell key's first 16 hex digits: a state file's name
    key: str
    spec: str
    name: str | None  # --name / NAME=PATH display name
    backbone: str  # the card's name
    task: str
    seed: int
    resources: Resources

    def as_job_cell(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "spec": self.spec, "name": self.name, "backbone": self.backbone, "task": self.task, "seed": self.seed}

    def label(self) -> str:
        return f"{self.backbone} x {self.task} seed {self.seed}"


@dataclass
class Grid:
    cells: list[Cell] = field(default_factory=list)  # to submit
    stored: list[Cell] = field(default_factory=list)  # in the store already: not submitted
    active: list[tuple[Cell, str]] = field(default_factory=list)  # submitted before and not ended: (cell, job id)
    warnings: list[str] = field(default_factory=list)


def plan_grid(backbones: str, tasks: str, seeds: list[int], opts: Any, resources_of: Any, active: dict[str, str]) -> Grid:
    """Every backbone x task x seed cell (a deterministic task once, at the first seed), resolved
    and checked here (names, settings, data, weights) so that bad input fails before anything is
    submitted. `resources_of(task_name)`: its Resources; `active`: cell key -> job id of cells
    pending or running in earlier submissions."""
    from bench.cards import expand_backbones
    from bench.runner import prepare_cell, resolve_grid_names, select_tasks
    from bench.store import DB_NAME, ResultsStore

    task_list = select_tasks(tasks)
    specs = expand_backbones(backbones)
    names = resolve_grid_names(specs, opts)
    store = ResultsStore.open(opts.results, write=False) if (opts.results / DB_NAME).is_file() or (opts.results / "incoming").is_dir() else None
    grid = Grid()
    try:
        for seed in seeds:
            for spec in specs:
                for task in task_list:
                    if not task.seeded and seed != seeds[0]:
                        continue
                    cell_opts = copy.copy(opts)
                    cell_opts.seed = seed
                    try:
                        plan = prepare_cell(spec, task, cell_opts, names[spec])
                    except BenchError as exc:
                        raise BenchError(f"{spec} x {task.name}: {exc.message}", exc.hint) from None
                    cell = Cell(plan.key[:16], plan.key, spec, names[spec], plan.card.name, task.name, seed if task.seeded else seeds[0], resources_of(task.name))
                    if store is not None and not opts.force and store.lookup(plan.key) is not None:
                        grid.stored.append(cell)
                    elif plan.key in active:
                        grid.active.append((cell, active[plan.key]))
                    else:
                        grid.cells.append(cell)
        if store is not None:
            grid.warnings += time_warnings(grid.cells, store)
    finally:
        if store is not None:
            store.close()
    return grid


def time_warnings(cells: list[Cell], store: Any) -> list[str]:
    """Cells whose --time is shorter than what this store's records of the task took (the
    slowest complete run of it; limited runs count for limited cells)."""
    out = []
    seen = set()
    rows = store.extract(["$.timing.total_s", "$.device.type", "$.device.world_size"])
    for cell in cells:
        if (cell.task, cell.resources.time) in seen:
            continue
        seen.add((cell.task, cell.resources.time))
        import json

        took = [(json.loads(r[10])[0] or 0, json.loads(r[10])[1], r[0]) for r in rows if r[3] == cell.task]
        if not took:
            continue
        seconds, device, run_id = max(took)
        if cell.resources.time * 60 < seconds:
            out.append(f"{cell.task}: time {format_minutes(cell.resources.time)} is shorter than the {format_minutes(-(-int(seconds) // 60))} "
                       f"its slowest stored run took (record {run_id}, on {device}); the job may reach its time limit "
                       "(it is requeued at most 3 times and resumes from its training stage's checkpoint)")
    return out


def arrays(cells: list[Cell], max_size: int) -> list[list[Cell]]:
    """Cells grouped by resources (first-seen order), each group cut into arrays of at most
    `max_size` tasks (Slurm's MaxArraySize: indices 0 .. MaxArraySize - 1)."""
    if max_size < 1:
        raise BenchError(f"the cluster's MaxArraySize is {max_size}", "ask the cluster's admins; bench submits every cell as an array task")
    groups: dict[Resources, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.resources, []).append(cell)
    return [group[i:i + max_size] for group in groups.values() for i in range(0, len(group), max_size)]
