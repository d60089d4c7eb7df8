"""What one job asks of the cluster: per-task defaults, a YAML profile over them, flags over both.

Order, each overriding the one before: bench's per-task defaults (TASK_DEFAULTS: detection wants
a GPU and hours, classification minutes), the profile's `defaults`, the profile's `tasks`
entries (task names or wildcards, in file order), then the command-line flags.

    # profile.yaml (bench run --launcher slurm --launcher-profile profile.yaml ...)
    partition: gpu
    account: vision
    max_parallel: 16
    slurm_extra: {exclusive: user}
    defaults: {cpus_per_task: 8, mem: 32G}
    tasks:
      voc_det*: {gpus_per_node: 4, time: "10:00:00"}
      imagenet_cls: {time: "00:30:00"}
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import BenchError


@dataclass(frozen=True)
class Resources:
    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None  # processes per node (DDP ranks); default one per GPU, else 1
    cpus_per_task: int = 4
    mem: str | None = None  # sbatch's --mem: 16G, 4000M
    time: int = 60  # minutes
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # --slurm-extra KEY=VALUE: any other sbatch option

    @property
    def processes(self) -> int:
        return self.tasks_per_node if self.tasks_per_node is not None else max(1, self.gpus_per_node)

    def world_size(self) -> int:
        return self.nodes * self.processes

    def describe(self) -> str:
        bits = [f"{self.nodes} node{'s' * (self.nodes > 1)}", f"{self.processes} task{'s' * (self.processes > 1)}/node",
                f"{self.gpus_per_node} GPU/node", f"{self.cpus_per_task} CPU/task", f"mem {self.mem or 'default'}", f"time {format_minutes(self.time)}"]
        bits += [f"{k} {v}" for k, v in (("partition", self.partition), ("account", self.account), ("qos", self.qos), ("constraint", self.constraint)) if v]
        bits += [f"{k}={v}" for k, v in self.extra]
        return ", ".join(bits)


# Defaults per task: what one paper-protocol cell of that task needs on a GPU node, with room to
# spare. bench's own allowances, not measurements: override them in a profile.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "imagenet_cls": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 60},
    "cifar100_cls": {"gpus_per_node": 1, "cpus_per_task": 4, "mem": "16G", "time": 30},
    "imagenet_fgsm": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 120},
    "imagenet_c": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 24 * 60},
    "imagenet_occlusion": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 8 * 60},
    "imagenet_inbetween": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 120},
    "imagenet_shift": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 120},
    "cub_loc": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 6 * 60},
    "imagenet_loc": {"gpus_per_node": 4, "cpus_per_task": 8, "mem": "128G", "time": 24 * 60},
    "voc_det_frcnn": {"gpus_per_node": 4, "cpus_per_task": 8, "mem": "64G", "time": 16 * 60},
    "voc_det_ssd": {"gpus_per_node": 4, "cpus_per_task": 8, "mem": "64G", "time": 16 * 60},
    "voc_det": {"gpus_per_node": 4, "cpus_per_task": 8, "mem": "64G", "time": 32 * 60},
    "coco_cap": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "64G", "time": 24 * 60},
    "cifar100_ood": {"gpus_per_node": 1, "cpus_per_task": 4, "mem": "16G", "time": 60},
    "imagenet_ood": {"gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "time": 120},
}
MINI = {"gpus_per_node": 0, "cpus_per_task": 1, "mem": "2G", "time": 15}  # --mini or --limit cells: minutes on a CPU

FIELDS = {f.name for f in fields(Resources)} - {"extra"}
PROFILE_KEYS = {"defaults", "tasks", "max_parallel", "slurm_extra"} | FIELDS


def parse_minutes(value: Any, what: str = "--time") -> int:
    """Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (minutes; seconds rounded up)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise BenchError(f"{what} '{value}' is not a Slurm time", "write minutes (90), H:M:S (1:30:00) or D-H:M:S (2-00:00:00)")
    days, a, b, c = m.groups()
    if days is not None:  # D-H[:M[:S]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # H:M:S
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # M:S
        seconds = int(a) * 60 + int(b)
    else:
        seconds = int(a) * 60
    if seconds <= 0:
        raise BenchError(f"{what} '{value}' is zero", "give the job some time, e.g. --time 1:00:00")
    return -(-seconds // 60)


def format_minutes(minutes: int) -> str:
    days, rest = divmod(minutes, 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def parse_mem(value: Any, what: str = "--mem") -> str:
    text = str(value).strip().upper()
    if not re.fullmatch(r"\d+[KMGT]?", text):
        raise BenchError(f"{what} '{value}' is not a Slurm memory size", "e.g. --mem 32G or --mem 4000M (0: the whole node)")
    return text


def _checked(values: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if key not in FIELDS:
            raise BenchError(f"{where}: unknown resource '{key}'", f"known: {', '.join(sorted(FIELDS))}")
        if value is None:
            continue
        what = f"--{key.replace('_', '-')}" if where == "command line" else f"{where}: {key}"
        if key == "time":
            value = parse_minutes(value, what)
        elif key == "mem":
            value = parse_mem(value, what)
        elif key in ("nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task"):
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "gpus_per_node" else 1):
                raise BenchError(f"{what} must be a whole number{' >= 1' if key != 'gpus_per_node' else ' >= 0'}, got {value!r}", "fix the value")
        else:
            value = str(value)
        out[key] = value
    return out


@dataclass
class Profile:
    defaults: dict[str, Any] = field(default_factory=dict)
    tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    max_parallel: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    source: str = "built-in defaults"


def load_profile(path: str | Path | None) -> Profile:
    if path is None:
        return Profile()
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise BenchError(f"launcher profile {p} does not exist", "pass the path of a YAML profile (see README: Running on a cluster)") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"launcher profile {p} is not YAML ({' '.join(str(exc).split())})", "fix the file") from None
    if not isinstance(raw, dict):
        raise BenchError(f"launcher profile {p} must be a mapping", "e.g. partition: gpu / defaults: {time: 60}")
    unknown = sorted(set(raw) - PROFILE_KEYS)
    if unknown:
        raise BenchError(f"launcher profile {p}: unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}", f"known: {', '.join(sorted(PROFILE_KEYS))}")
    top = {k: raw[k] for k in FIELDS if k in raw}
    defaults = {**_checked(top, str(p)), **_checked(dict(raw.get("defaults") or {}), f"{p}: defaults")}
    tasks = [(str(pattern), _checked(dict(values or {}), f"{p}: tasks: {pattern}")) for pattern, values in (raw.get("tasks") or {}).items()]
    mp = raw.get("max_parallel")
    if mp is not None and (not isinstance(mp, int) or mp < 1):
        raise BenchError(f"launcher profile {p}: max_parallel must be a whole number >= 1, got {mp!r}", "fix the value")
    extra = {str(k): str(v) for k, v in (raw.get("slurm_extra") or {}).items()}
    return Profile(defaults, tasks, mp, extra, str(p))


def parse_extra(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key:
            raise BenchError(f"--slurm-extra expects KEY=VALUE, got '{item}'", "e.g. --slurm-extra exclusive=user or --slurm-extra mail-type=END")
        out[key] = value.strip() if sep else ""
    return out


def resources_for(task: str, profile: Profile, flags: dict[str, Any], extra: dict[str, str], small: bool) -> Resources:
    """A cell's resources. `small`: a --mini or --limit cell, which starts from MINI instead of
    the task's full-protocol defaults (a profile and flags still win)."""
    values: dict[str, Any] = dict(MINI if small else TASK_DEFAULTS.get(task, {}))
    values.update(profile.defaults)
    for pattern, override in profile.tasks:
        if fnmatch.fnmatchcase(task, pattern):
            values.update(override)
    values.update(_checked({k: v for k, v in flags.items() if v is not None}, "command line"))
    merged = {**profile.extra, **extra}
    r = Resources(**values, extra=tuple(sorted(merged.items())))
    if r.nodes > 1 and r.processes == 1 and r.gpus_per_node == 0:
        raise BenchError(f"{task}: {r.nodes} nodes of one CPU process each make no sense for bench's cells", "use --nodes 1, or give --gpus-per-node")
    return r


def as_dict(r: Resources) -> dict[str, Any]:
    out = asdict(r)
    out["extra"] = dict(r.extra)
    return out
