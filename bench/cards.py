"""Backbone cards: one YAML record per checkpoint (architecture, weights, preprocessing, provenance).

Also resolves what a user can name as a backbone: a card name or alias, a card YAML file,
`torchvision:NAME[.WEIGHTS]`, `timm:NAME`, or a local checkpoint file with `--arch`.
Nothing here imports torch; the generic specs import their library only when resolved.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError
from bench.registry import is_pattern, split_names, unknown_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
FORMATS = ("auto", "cutmix", "state_dict", "module_state_dict", "safetensors", "torchvision", "timm")
BUILTIN_CARDS = Path(__file__).resolve().parent.parent / "checkpoints"
CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)  # CutMix-PyTorch's (and ODIN's) CIFAR normalisation
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


@dataclass(frozen=True)
class Preprocessing:
    """Eval transform: resize the short side, center-crop, normalise."""

    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass(frozen=True)
class Weights:
    url: str | None = None
    file: str | None = None  # file name in the cache, or an absolute path for local files
    sha256: str | None = None  # full digest, or a prefix (torchvision file names carry one)
    format: str = "auto"
    made_by: str | None = None  # the bench command that writes the file, for weights with no URL
    unused: tuple[str, ...] = ()  # key prefixes of the file the architecture does not have on purpose (VGG's classifier for VGG-GAP)


@dataclass(frozen=True)
class BackboneCard:
    name: str
    arch: str  # torchvision builder name, 'timm:NAME', or 'module:callable'
    description: str = ""
    num_classes: int = 1000
    weights: Weights = field(default_factory=Weights)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    # the parts a task reaches (bench/backbones/view.py); empty: derived from the model
    head: tuple[str, ...] = ()  # the Linear classifier first, then other layers new to a task; only these may be missing or different, for tasks that replace the classifier
    cam_layer: str | None = None  # the map the classifier pools (a ViT: the module giving its normalised tokens)
    cam_norm: str | None = None  # a LayerNorm between the pooling and the classifier, folded into the CAM weights ('' for none)
    cam_tokens: int | None = None  # a token model: the number of class / distillation tokens before the patch tokens
    feature_layers: tuple[str, ...] = ()  # the multi-scale stages, in order
    arch_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the architecture's builder (timm.create_model's img_size, ...)
    aliases: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    card_file: str | None = None
    bare_file: bool = False  # a checkpoint file named with --arch: no card, so bench's default preprocessing unless told

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reported(self, task: str) -> dict[str, float]:
        """Published numbers for a task, e.g. {'top1_err': 21.40} (empty when none)."""
        return dict((self.provenance.get("reported") or {}).get(task) or {})


# Architectures bench builds itself (name -> builder), and what a checkpoint file of one of them
# gets when no card says otherwise: a CIFAR model's classes, 32-pixel input and CIFAR statistics.
BENCH_ARCHS = {"pyramidnet200": "bench.backbones.pyramidnet:pyramidnet200", "vgg16_gap": "bench.backbones.wsol_nets:vgg16_gap",
               "inception_v3_cam": "bench.backbones.wsol_nets:inception_v3_cam"}
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "pyramidnet200": {"num_classes": 100, "preprocessing": Preprocessing(resize=32, crop=32, mean=CIFAR_MEAN, std=CIFAR_STD),
                      "cam_layer": "relu_final", "feature_layers": ("layer1", "layer2", "layer3")},
}


def make_preprocessing(base: Preprocessing, changes: dict[str, Any], where: str, hint: str) -> Preprocessing:
    """`base` with some fields changed, each checked (a card's YAML, or --resize/--crop/--mean/--std)."""
    bad = sorted(set(changes) - set(Preprocessing.__dataclass_fields__))
    if bad:
        raise BenchError(f"{where}unknown preprocessing field(s) {', '.join(bad)}", "use resize, crop, interpolation, mean, std")
    changes = dict(changes)
    for key in ("mean", "std"):
        if key in changes:
            value = changes[key]
            if isinstance(value, str):
                value = value.split(",")
            try:
                changes[key] = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                changes[key] = ()
            if len(changes[key]) != 3 or (key == "std" and min(changes[key]) <= 0):
                raise BenchError(f"{where}preprocessing {key} needs 3 numbers, one per RGB channel{' (positive)' if key == 'std' else ''}", hint)
    for key in ("resize", "crop"):
        if key in changes and (isinstance(changes[key], bool) or not isinstance(changes[key], int) or changes[key] <= 0):
            raise BenchError(f"{where}preprocessing {key} must be a positive integer, got {changes[key]!r}", hint)
    prep = replace(base, **changes)
    if prep.interpolation not in INTERPOLATIONS:
        raise BenchError(f"{where}interpolation '{prep.interpolation}' is not one of {', '.join(INTERPOLATIONS)}", hint)
    if prep.crop > prep.resize:
        raise BenchError(f"{where}crop {prep.crop} must be at most resize {prep.resize}", hint)
    return prep


def _tuple(value: Any, what: str, path: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise BenchError(f"card {path}: '{what}' must be a list", "fix the YAML")
    return tuple(value)


def parse_card(data: Any, path: str) -> BackboneCard:
    """Validate a card's YAML mapping; every mistake names the field and the file."""
    if not isinstance(data, dict):
        raise BenchError(f"card {path} is not a YAML mapping", "see checkpoints/README.md for the fields")
    known = {f for f in BackboneCard.__dataclass_fields__} - {"card_file", "bare_file"}
    extra = sorted(set(data) - known)
    if extra:
        raise BenchError(f"card {path} has unknown field(s) {', '.join(extra)}", f"known fields: {', '.join(sorted(known))}")
    for required in ("name", "arch"):
        if not data.get(required):
            raise BenchError(f"card {path} lacks '{required}'", "every card needs a name and an arch")
    prep = make_preprocessing(Preprocessing(), dict(data.get("preprocessing") or {}), f"card {path}: ", "fix the YAML")
    w = dict(data.get("weights") or {})
    bad = sorted(set(w) - set(Weights.__dataclass_fields__))
    if bad:
        raise BenchError(f"card {path}: unknown weights field(s) {', '.join(bad)}", "use url, file, sha256, format, made_by, unused")
    if "unused" in w:
        w["unused"] = _tuple(w["unused"], "weights.unused", path)
    weights = Weights(**w)
    if weights.format not in FORMATS:
        raise BenchError(f"card {path}: weights.format '{weights.format}' is not one of {', '.join(FORMATS)}", "fix the YAML")
    if weights.sha256 is not None and not isinstance(weights.sha256, str):  # YAML reads 1234e567 as a number
        raise BenchError(f"card {path}: weights.sha256 must be quoted (sha256: '...') so YAML keeps it a string", "fix the YAML")
    if weights.sha256 is not None and not re.fullmatch(r"[0-9a-f]{8,64}", str(weights.sha256)):
        raise BenchError(f"card {path}: weights.sha256 must be lower-case hex (8 to 64 digits)", "fix the YAML")
    fields = dict(data)
    fields.update(
        preprocessing=prep,
        weights=weights,
        num_classes=int(data.get("num_classes", 1000)),
        card_file=path,
    )
    for key in ("head", "feature_layers", "aliases"):
        if key in data:
            fields[key] = _tuple(data[key], key, path)
    for key in ("cam_layer", "cam_norm"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise BenchError(f"card {path}: '{key}' must be a module name", "fix the YAML")
    if data.get("cam_tokens") is not None and (isinstance(data["cam_tokens"], bool) or not isinstance(data["cam_tokens"], int) or data["cam_tokens"] < 0):
        raise BenchError(f"card {path}: 'cam_tokens' must be the number of prefix tokens (0 or more)", "fix the YAML")
    if not isinstance(data.get("arch_args") or {}, dict):
        raise BenchError(f"card {path}: 'arch_args' must be a mapping of the builder's keyword arguments", "fix the YAML")
    fields["arch_args"] = dict(data.get("arch_args") or {})
    return BackboneCard(**fields)


def card_dirs() -> list[Path]:
    """Built-in cards, then any folders named in BENCH_CARDS (path-separated)."""
    dirs = [BUILTIN_CARDS]
    extra = os.environ.get("BENCH_CARDS", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


_READ: dict[tuple[str, int, int], BackboneCard] = {}  # (path, mtime, size) -> card: commands resolve several names


def read_card_file(path: Path) -> BackboneCard:
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key in _READ:
            return _READ[key]
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml when built with it: 10x faster
    except OSError as exc:
        raise BenchError(f"cannot read card {path}: {exc.strerror}", "check the path") from None
    except yaml.YAMLError as exc:
        raise BenchError(f"card {path} is not valid YAML ({str(exc).splitlines()[0]})", "fix the YAML") from None
    _READ[key] = card = parse_card(data, str(path))
    return card


def load_cards() -> dict[str, BackboneCard]:
    """All cards by name, in file order; aliases are resolved by `find_card`."""
    cards: dict[str, BackboneCard] = {}
    for folder in card_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            card = read_card_file(path)
            if card.name in cards:
                raise BenchError(f"card name '{card.name}' is defined twice ({cards[card.name].card_file} and {path})", "rename one")
            cards[card.name] = card
    return cards


def find_card(name: str, cards: dict[str, BackboneCard] | None = None) -> BackboneCard:
    cards = load_cards() if cards is None else cards
    if name in cards:
        return cards[name]
    for card in cards.values():
        if name in card.aliases:
            return card
    names = list(cards) + [a for c in cards.values() for a in c.aliases]
    raise unknown_name(
        "backbone", name, names,
        "see 'bench list backbones', or name torchvision:ARCH, timm:ARCH, or a checkpoint file with --arch",
    )


def expand_backbones(value: str, cards: dict[str, BackboneCard] | None = None) -> list[str]:
    """Comma lists and wildcards over card names -> concrete specs (generic specs pass through)."""
    out: list[str] = []
    for spec in split_names(value):
        if is_pattern(spec) and not os.path.exists(spec):
            cards = load_cards() if cards is None else cards
            matches = [n for n in cards if fnmatch.fnmatchcase(n, spec)]
            if not matches:
                raise BenchError(f"no backbone matches '{spec}'", "see 'bench list backbones'")
            out += [m for m in matches if m not in out]
        elif spec not in out:
            out.append(spec)
    return out


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or os.path.exists(spec) or bool(
        re.search(r"\.(pth|pt|tar|bin|ckpt|safetensors|yaml|yml)$", spec)
    )


DISPLAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def split_display_name(spec: str) -> tuple[str | None, str]:
    """'NAME=PATH' (a checkpoint file with a display name) -> (NAME, PATH); anything else -> (None, spec)."""
    name, sep, rest = spec.partition("=")
    if sep and rest and DISPLAY_NAME.match(name) and not os.path.exists(spec):
        return name, rest
    return None, spec


def check_display_name(name: str, path: Path) -> None:
    if not DISPLAY_NAME.match(name):
        raise BenchError(f"display name '{name}' of {path} may hold only letters, digits and _ . + - (starting with a letter or digit)", "e.g. --name r50_mine")
    cards = load_cards()
    if name in cards or any(name in c.aliases for c in cards.values()):
        raise BenchError(f"display name '{name}' of {path} is the name of a card", "pick another name, so that tables never mix the file with the card's weights")


def resolve_backbone(spec: str, arch: str | None = None, num_classes: int | None = None, preprocessing: dict[str, Any] | None = None,
                     name: str | None = None) -> BackboneCard:
    """Turn what the user typed into a card.

    A checkpoint file is shown (and stored) under its file name, or under `name` (--name, or
    NAME=PATH in the list); its weights' sha256 is part of its identity either way.
    `preprocessing` may hold 'from' (a card whose preprocessing to use) and any of resize, crop,
    interpolation, mean, std (--preprocessing-from, --resize, ...)."""
    given, spec = split_display_name(spec)
    name = given or name
    if name and not looks_like_path(spec):
        raise BenchError(f"a display name ('{name}') applies to a checkpoint file, and {spec} is not one", "cards, torchvision: and timm: backbones keep their own names")
    if spec.startswith("torchvision:"):
        card = torchvision_card(spec.split(":", 1)[1])
    elif spec.startswith("timm:"):
        card = timm_card(spec.split(":", 1)[1])
    elif looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise BenchError(f"checkpoint file {path} does not exist", "check the path")
        if path.suffix in (".yaml", ".yml"):
            if name:
                raise BenchError(f"a display name ('{name}') applies to a checkpoint file, and {path} is a card", "a card's name is the one in its file")
            card = read_card_file(path)
        else:
            if not arch:
                raise BenchError(
                    f"a checkpoint file needs its architecture: {path}",
                    "pass --arch (e.g. --arch resnet50, --arch timm:resnext101_32x4d)",
                )
            if name:
                check_display_name(name, path)
            card = BackboneCard(
                name=name or path.name,
                arch=arch,
                description=f"local checkpoint {path}",
                weights=Weights(file=str(path.resolve()), format="auto"),
                bare_file=True,
                **ARCH_DEFAULTS.get(arch, {}),
            )
    else:
        card = find_card(spec)
    if arch and not card.bare_file:  # a card's name stands for its architecture: another one would store a relabelled model
        raise BenchError(f"--arch applies to a checkpoint file, and {spec} is the card '{card.name}' ({card.arch})",
                         "drop --arch; to run other weights, name their file: --backbone PATH --arch ARCH")
    if num_classes is not None:
        card = replace(card, num_classes=num_classes)
    if preprocessing:
        changes = {k: v for k, v in preprocessing.items() if k != "from" and v is not None}
        base = card.preprocessing
        if preprocessing.get("from"):
            base = find_card(preprocessing["from"]).preprocessing
        card = replace(card, preprocessing=make_preprocessing(base, changes, "", "fix --resize / --crop / --mean / --std / --interpolation"))
    return card


def torchvision_card(name: str) -> BackboneCard:
    """Card for torchvision's own weights: 'resnet50' (DEFAULT weights) or 'resnet50.IMAGENET1K_V1'."""
    from torchvision import models  # imported only when such a backbone is asked for

    arch, _, tag = name.partition(".")
    try:
        weights = models.get_model_weights(arch)[tag or "DEFAULT"]
    except ValueError:
        raise BenchError(f"torchvision has no model '{arch}'", "see torchvision.models.list_models()") from None
    except KeyError:
        tags = ", ".join(w.name for w in models.get_model_weights(arch))
        raise BenchError(f"torchvision model '{arch}' has no weights '{tag}'", f"available: {tags}") from None
    tf = weights.transforms()
    url = weights.url
    prefix = re.search(r"-([a-f0-9]{8,})\.", os.path.basename(url))
    meta = weights.meta
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    reported = {}
    if "acc@1" in metrics:
        reported = {"imagenet_cls": {"top1_err": round(100 - metrics["acc@1"], 3), "top5_err": round(100 - metrics["acc@5"], 3)}}
    return BackboneCard(
        name=f"torchvision:{arch}.{weights.name}",
        arch=arch,
        description=f"torchvision {arch} weights {weights.name}",
        num_classes=len(meta.get("categories") or []) or 1000,
        weights=Weights(url=url, file=os.path.basename(url), sha256=prefix.group(1) if prefix else None, format="torchvision"),
        preprocessing=Preprocessing(
            resize=int(tf.resize_size[0]),
            crop=int(tf.crop_size[0]),
            interpolation=tf.interpolation.value,
            mean=tuple(tf.mean),
            std=tuple(tf.std),
        ),
        provenance={"source": meta.get("recipe", "torchvision"), "reported": reported},
    )


def timm_card(name: str) -> BackboneCard:
    """Card for timm's pretrained weights, with timm's own eval preprocessing."""
    try:
        import timm
    except ImportError:
        raise BenchError(f"timm:{name} needs timm, which is not installed", "pip install timm") from None
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # timm raises several types for unknown names
        cfg = None
    if cfg is None:
        raise unknown_name("timm pretrained model", name, timm.list_pretrained(), "see timm.list_pretrained(); a model without weights: --backbone FILE --arch timm:NAME")
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    # timm's resolve_data_config default (use_test_size=False): input_size and crop_pct
    crop = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation", "bicubic")
    return BackboneCard(
        name=f"timm:{name}",
        arch=f"timm:{name}",
        description=f"timm pretrained {name}",
        num_classes=int(cfg.get("num_classes", 1000)),
        weights=Weights(format="timm"),
        preprocessing=Preprocessing(
            resize=int(math.floor(crop / crop_pct)),  # timm's scale_size
            crop=crop,
            interpolation=interpolation if interpolation in INTERPOLATIONS else "bicubic",
            mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_STD)),
        ),
        head=(str(cfg.get("classifier", "fc")),),
        provenance={"source": cfg.get("origin_url") or cfg.get("hf_hub_id") or "timm"},
    )
