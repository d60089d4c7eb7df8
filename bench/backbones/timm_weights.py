"""timm's pretrained weights without minutes of retries when offline.

timm fetches through huggingface_hub, which retries for about a minute before it fails when the
network is down. bench looks in the caches first (the hub cache, then torch.hub's for URL
weights) and loads a cached file directly; only when nothing is cached does it ask the network,
after one quick reachability check (skipped, and the network never asked, under HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.errors import BenchError

HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub loader asks for, in order


def hub_cache() -> Path:
    """huggingface_hub's cache folder, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return home / "hub"


def cached_file(cfg: dict[str, Any]) -> Path | None:
    """A local copy of the weights a timm pretrained config names, or None."""
    repo = cfg.get("hf_hub_id")
    if repo:
        folder = hub_cache() / ("models--" + repo.replace("/", "--"))
        ref = folder / "refs" / "main"
        snapshots = [folder / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
        snapshots += sorted((folder / "snapshots").glob("*")) if (folder / "snapshots").is_dir() else []
        for name in ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []) + list(HUB_FILES):
            for snap in snapshots:
                if (snap / name).is_file():
                    return snap / name
    url = cfg.get("url")
    if url:
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if path.is_file():
            return path
    return None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=None)
def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """One connection attempt, remembered for the process."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def create_pretrained(name: str, num_classes: int, kwargs: dict[str, Any] | None = None) -> Any:
    """timm.create_model(name, pretrained=True), from the cache when it can, failing in one line
    (and seconds) when the weights are neither cached nor reachable."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    local = cached_file(cfg)
    if local is not None:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay={"file": str(local)}, **(kwargs or {}))
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    if offline() or not reachable(host):
        why = "HF_HUB_OFFLINE is set" if offline() else f"{host} cannot be reached"
        raise BenchError(f"timm weights for '{name}' are not in the cache ({hub_cache()}) and {why}",
                         "fetch them once where the network is up (they are cached), or pass a local file: --backbone FILE --arch timm:" + name)
    return timm.create_model(name, pretrained=True, num_classes=num_classes, **(kwargs or {}))
