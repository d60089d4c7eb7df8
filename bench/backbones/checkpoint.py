"""Reading checkpoint files into a plain state_dict, whatever container they came in.

Formats: the official CutMix-PyTorch dict ({'epoch','arch','state_dict' with 'module.' keys,
'best_err1','best_err5','optimizer'}), a plain state_dict, a flat 'module.'-prefixed dict,
'.safetensors', and torchvision/timm files (plain state_dicts). Pickles are read with
weights_only=True; one that needs code is refused unless the user trusts it.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")  # most common first
PREFIXES = ("module.",)


@dataclass
class Checkpoint:
    state_dict: dict[str, Any]
    format: str  # which container it came in
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. epoch, arch, best_err1 of CutMix files
    stripped_prefix: str | None = None


def _not_readable(path: Path, exc: BaseException) -> BenchError:
    """One line: a file that is not a checkpoint at all, or a checkpoint cut short."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # neither torch's zip format nor a pickle
        return BenchError(f"{path} is not a PyTorch checkpoint (it starts with {head!r})",
                          "point --backbone at the .pth/.pth.tar/.safetensors file itself (an HTML error page or a text file is not one)")
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    if len(detail) > 120:  # at a word boundary
        detail = detail[:120].rsplit(" ", 1)[0] + " ..."
    return BenchError(
        f"{path} is a truncated or damaged PyTorch checkpoint ({type(exc).__name__}: {detail})",
        "check that the download completed, or delete it and run again",
    )


def _torch_load(path: Path, trust: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a pickle of tensors at all
            raise _not_readable(path, exc) from None
        if not trust:
            raise BenchError(
                f"{path} is a pickle that needs code to load, which can run arbitrary code",
                "pass --trust-checkpoint only if you trust where the file came from",
            ) from None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:  # unpickling trusted code can fail in any way
            raise BenchError(f"{path} could not be unpickled even with --trust-checkpoint ({type(exc2).__name__}: {exc2})", "load it in the code that wrote it and save its state_dict") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise _not_readable(path, exc) from None  # what torch's legacy unpickler raises on other bytes


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BenchError(f"{path} is not a readable safetensors file ({exc})", "check that the download completed") from None


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def read_checkpoint(path: Path, trust: bool = False) -> Checkpoint:
    """Read any supported file into a state_dict with DataParallel prefixes removed."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise BenchError(f"checkpoint {path} is empty", "check that the download completed")
    if path.suffix == ".safetensors":
        ckpt = Checkpoint(_load_safetensors(path), "safetensors")
    else:
        obj = _torch_load(path, trust)
        if _is_state_dict(obj):
            ckpt = Checkpoint(dict(obj), "state_dict")
        elif isinstance(obj, dict) and any(_is_state_dict(obj.get(k)) for k in WRAPPER_KEYS):
            key = next(k for k in WRAPPER_KEYS if _is_state_dict(obj.get(k)))
            meta = {k: v for k, v in obj.items() if isinstance(v, (int, float, str)) and k != key}
            fmt = "cutmix" if key == "state_dict" and "arch" in obj else f"dict[{key!r}]"
            ckpt = Checkpoint(dict(obj[key]), fmt, meta)
        elif hasattr(obj, "state_dict") and callable(obj.state_dict):  # a whole pickled module (trusted)
            ckpt = Checkpoint(dict(obj.state_dict()), "pickled module")
        else:
            keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
            raise BenchError(
                f"{path} holds no state_dict (found: {keys})",
                f"expected tensors, or a dict with one of {', '.join(WRAPPER_KEYS)}",
            )
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in ckpt.state_dict):
            ckpt.state_dict = {k[len(prefix):]: v for k, v in ckpt.state_dict.items()}
            ckpt.stripped_prefix = prefix
            if ckpt.format == "state_dict":
                ckpt.format = "module_state_dict"
    return ckpt
