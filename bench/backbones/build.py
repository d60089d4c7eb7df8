"""Building a backbone from its card and loading its weights strictly.

A silently random or half-loaded backbone produces plausible, wrong tables, so every backbone
weight must load. Only the classifier named by the card's `head` may be missing or different,
and only for tasks that replace it. What was missing, unexpected or replaced goes into the
result record.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.backbones.checkpoint import Checkpoint, read_checkpoint
from bench.backbones.download import verify_sha256, weights_path
from bench.cards import BackboneCard
from bench.errors import BenchError
from bench.registry import unknown_name

# Architectures tried when a checkpoint does not fit, to say which one it looks like.
GUESS_ARCHS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2", "pyramidnet200",
)
TOLERATED_MISSING = ("num_batches_tracked",)  # absent from pre-0.4.1 checkpoints; torch fills it in


@dataclass
class LoadReport:
    format: str
    missing: list[str] = field(default_factory=list)  # head keys the task replaces
    unexpected: list[str] = field(default_factory=list)  # head keys the task replaces
    replaced: list[str] = field(default_factory=list)  # head parameters re-initialised by the task
    filled: list[str] = field(default_factory=list)  # tolerated buffers not in the file
    dropped: list[str] = field(default_factory=list)  # file keys under the card's weights.unused
    stripped_prefix: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedBackbone:
    card: BackboneCard
    model: Any  # torch.nn.Module
    sha256: str
    path: str | None
    report: LoadReport


def build_model(arch: str, num_classes: int, pretrained_timm: bool = False, arch_args: dict[str, Any] | None = None) -> Any:
    """An uninitialised model of the card's architecture; `arch_args` go to its builder."""
    from bench.cards import BENCH_ARCHS

    arch = BENCH_ARCHS.get(arch, arch)
    kwargs = dict(arch_args or {})
    if arch.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise BenchError(f"arch {arch} needs timm, which is not installed", "pip install timm") from None
        name = arch.split(":", 1)[1]
        try:
            if pretrained_timm:
                from bench.backbones.timm_weights import create_pretrained

                return create_pretrained(name, num_classes, kwargs)
            return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
        except TypeError as exc:
            raise BenchError(f"timm model '{name}' does not take the card's arch_args ({exc})", "fix arch_args in the card") from None
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise unknown_name("timm model", name, timm.list_models(), "see timm.list_models()") from None
            raise BenchError(f"cannot fetch timm weights for '{name}' ({str(exc).splitlines()[0]})", "check the network, or pass a local file with --arch") from None
        except OSError as exc:
            raise BenchError(f"cannot fetch timm weights for '{name}' ({exc})", "check the network or HF_HUB_CACHE, or pass a local file with --arch") from None
    if ":" in arch:
        module, _, attr = arch.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            raise BenchError(f"cannot import architecture {arch}", "use torchvision names, timm:NAME, or module:callable") from None
        try:
            return factory(num_classes=num_classes, **kwargs)
        except TypeError as exc:
            raise BenchError(f"architecture {arch} does not take the card's arch_args ({exc})", "fix arch_args in the card") from None
    from torchvision import models

    if arch not in models.list_models():
        raise unknown_name("architecture", arch, models.list_models() + sorted(BENCH_ARCHS), "use a torchvision model name, bench's own (pyramidnet200, vgg16_gap, inception_v3_cam), timm:NAME or module:callable")
    try:
        return models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"torchvision's {arch} does not take the card's arch_args ({exc})", "fix arch_args in the card") from None


def _is_head(key: str, head: tuple[str, ...]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in head)


def _shapes(sd: dict[str, Any]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def guess_arch(state_dict: dict[str, Any], head: tuple[str, ...] = ("fc",)) -> list[str]:
    """Architectures (torchvision's, bench's own) whose backbone keys and shapes equal the checkpoint's."""
    import torch
    from torchvision import models

    from bench.cards import BENCH_ARCHS

    wanted = {k: s for k, s in _shapes(state_dict).items() if not _is_head(k, head) and not k.endswith(TOLERATED_MISSING)}
    found = []
    for name in GUESS_ARCHS:
        with torch.device("meta"):
            model = build_model(name, 100) if name in BENCH_ARCHS else models.get_model(name, weights=None)
        have = {k: s for k, s in _shapes(model.state_dict()).items() if not _is_head(k, head) and not k.endswith(TOLERATED_MISSING)}
        if have == wanted:
            found.append(name)
    return found


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def head_of(model: Any, card: BackboneCard) -> BackboneCard:
    """The card with its head prefixes: its own, or those the backbone adapter derives from the model."""
    if card.head:
        return card
    from dataclasses import replace

    from bench.backbones.parts import derive_head

    return replace(card, head=derive_head(model, card)[0])


def strict_load(model: Any, ckpt: Checkpoint, card: BackboneCard, replace_head: bool, source: str) -> LoadReport:
    """Load every backbone weight or raise; head keys may differ only when the task replaces the
    head; file keys under the card's weights.unused are left out on purpose (and reported)."""
    card = head_of(model, card)
    sd = ckpt.state_dict
    dropped = sorted(k for k in sd if _is_head(k, card.weights.unused))
    if dropped:
        sd = {k: v for k, v in sd.items() if k not in set(dropped)}
    target = _shapes(model.state_dict())
    given = _shapes(sd)
    missing = sorted(k for k in target if k not in given)
    unexpected = sorted(k for k in given if k not in target)
    mismatched = sorted(k for k in target if k in given and target[k] != given[k])
    report = LoadReport(format=ckpt.format, stripped_prefix=ckpt.stripped_prefix, meta=ckpt.meta, dropped=dropped)
    report.filled = [k for k in missing if k.endswith(TOLERATED_MISSING)]
    missing = [k for k in missing if k not in report.filled]
    if replace_head:
        report.missing = [k for k in missing if _is_head(k, card.head)]
        report.unexpected = [k for k in unexpected if _is_head(k, card.head)]
        report.replaced = sorted(k for k in target if _is_head(k, card.head))
        missing = [k for k in missing if k not in report.missing]
        unexpected = [k for k in unexpected if k not in report.unexpected]
        mismatched = [k for k in mismatched if not _is_head(k, card.head)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if mismatched:
            k = sorted(mismatched, key=lambda key: _is_head(key, card.head))[0]  # a backbone key says more
            parts.append(f"{len(mismatched)} of another shape ({k}: file {list(given[k])} vs model {list(target[k])})")
        hint = "pass --arch with the checkpoint's architecture"
        if not missing and not unexpected and all(_is_head(k, card.head) for k in mismatched):
            n = given[mismatched[0]][0]
            hint = f"the checkpoint's classifier has {n} outputs: pass --num-classes {n}"
        else:
            try:
                guesses = guess_arch(sd, card.head)
            except Exception:  # a guess must never hide the real error
                guesses = []
            if guesses:
                hint = f"its keys look like {' or '.join(guesses)}: pass --arch {guesses[0]}"
        raise BenchError(f"checkpoint {source} does not fit {card.arch}: " + "; ".join(parts), hint)
    to_load = {k: v for k, v in sd.items() if not (replace_head and _is_head(k, card.head))}
    result = model.load_state_dict(to_load, strict=False)
    leftover = [k for k in result.missing_keys if k not in report.filled and not (replace_head and _is_head(k, card.head))]
    if leftover or result.unexpected_keys:  # cannot happen after the checks above; guard anyway
        raise BenchError(f"checkpoint {source} left {_listing(leftover + list(result.unexpected_keys))} unloaded", "report this as a bench bug")
    return report


def state_dict_digest(sd: dict[str, Any]) -> str:
    """sha256 over names, dtypes, shapes and bytes: an identity for weights that come without a file."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_identity(card: BackboneCard, progress: bool = True) -> tuple[str | None, str, Any]:
    """(local file, sha256, model already built or None): what a result is keyed by.

    Files are fetched into the cache and checked against the card's sha256. timm's pretrained
    weights come without a file we control, so they are identified by a digest of the tensors.
    """
    if card.weights.format == "timm":
        model = build_model(card.arch, card.num_classes, pretrained_timm=True, arch_args=card.arch_args)
        return None, state_dict_digest(model.state_dict()), model
    path = weights_path(card, progress)
    return str(path), verify_sha256(path, card.weights.sha256), None


def load_backbone_from(card: BackboneCard, path: str | None, sha256: str, preloaded: Any, replace_head: bool = False, trust: bool = False) -> LoadedBackbone:
    """Build the card's architecture and strictly load the weights (eval mode, on the CPU)."""
    if preloaded is not None:
        report = LoadReport(format=card.weights.format)
        if replace_head:
            report.replaced = sorted(k for k in preloaded.state_dict() if _is_head(k, head_of(preloaded, card).head))
        return LoadedBackbone(card, preloaded.eval(), sha256, None, report)
    ckpt = read_checkpoint(Path(path), trust)
    model = build_model(card.arch, card.num_classes, arch_args=card.arch_args)
    try:
        report = strict_load(model, ckpt, card, replace_head, str(path))
    except BenchError as exc:
        if card.bare_file or "--num-classes" in (exc.hint or ""):
            raise
        looks = (exc.hint or "").split(":")[0] if "look like" in (exc.hint or "") else ""
        # a card's weights that do not fit its architecture are the wrong file, whatever flags are given
        raise BenchError(f"the weights of card '{card.name}' do not fit its architecture" + (f" ({looks})" if looks else "") + f": {exc.message}",
                         f"put {card.name}'s own checkpoint at {path}" + (f" (sha256 {card.weights.sha256})" if card.weights.sha256 else "")
                         + "; to run that file as another model, name it: --backbone PATH --arch ARCH") from None
    return LoadedBackbone(card, model.eval(), sha256, path, report)


def load_backbone(card: BackboneCard, replace_head: bool = False, trust: bool = False, progress: bool = True) -> LoadedBackbone:
    """Fetch, verify, build and strictly load the card's backbone."""
    path, sha, preloaded = weights_identity(card, progress)
    return load_backbone_from(card, path, sha, preloaded, replace_head, trust)
