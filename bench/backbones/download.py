"""Weight files: sha256-verified downloads into the cache, renamed into place atomically."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from bench.cards import BackboneCard
from bench.errors import BenchError
from bench.paths import cache_dir

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; an error if it does not match the expected digest (or prefix)."""
    actual = sha256_file(path)
    if expected and not actual.startswith(expected.lower()):
        raise BenchError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual[:len(expected)]}",
            "the file is corrupt or not the one the card names; delete it and run again",
        )
    return actual


def download(url: str, dest: Path, sha256: str | None, progress: bool = True) -> Path:
    """Download url to dest through a temporary file in the same folder; verify, then rename.

    Nothing is left at dest unless the whole file arrived and its digest matched.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "bench"}), timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise BenchError(
                    f"cannot download {url} ({reason})",
                    f"place the file at {dest}" + (f" (sha256 {sha256})" if sha256 else "") + " and run again",
                ) from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                from tqdm import tqdm

                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                    try:
                        for block in iter(lambda: response.read(CHUNK), b""):
                            out.write(block)
                            bar.update(len(block))
                    except OSError as exc:  # connection reset, timeout, disk full
                        raise BenchError(f"download of {url} broke off ({exc})", "run again; nothing was kept") from None
        if _is_folder_archive(tmp):  # shared-folder links arrive as a zip of the folder
            tmp = _extract_checkpoint(tmp, url)
        verify_sha256(tmp, sha256)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _is_folder_archive(path: Path) -> bool:
    """A zip that is not itself a torch.save file (those are zips holding <name>/data.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return not any(n.endswith("/data.pkl") or n == "data.pkl" for n in zf.namelist())


def _extract_checkpoint(archive: Path, url: str) -> Path:
    """The one checkpoint inside a downloaded zip, extracted next to it."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.namelist() if m.endswith((".pth", ".pth.tar", ".pt", ".safetensors")) and not m.endswith("/")]
        best = [m for m in members if m.endswith("model_best.pth.tar")]
        chosen = best or members
        if len(chosen) != 1:
            raise BenchError(f"the archive from {url} holds {len(chosen)} checkpoint files ({', '.join(members) or 'none'})", "download it by hand and pass the file")
        fd, out_name = tempfile.mkstemp(prefix=".extract.", suffix=".part", dir=archive.parent)
        with zf.open(chosen[0]) as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    archive.unlink()
    return Path(out_name)


def weights_path(card: BackboneCard, progress: bool = True, fetch: bool = True) -> Path:
    """Local path of a card's weight file, downloading it into the cache when missing (and fetch)."""
    w = card.weights
    if w.file and os.path.isabs(w.file):
        path = Path(w.file)
        if not path.is_file():
            raise BenchError(f"checkpoint file {path} does not exist", "check the path")
        return path
    if not w.file and not w.url:
        raise BenchError(f"card '{card.name}' names no weight file or URL", f"add weights.file or weights.url to {card.card_file}")
    name = w.file or os.path.basename(w.url.split("?")[0])
    folder = re.sub(r"[^A-Za-z0-9_.-]", "_", card.name)  # cards may share file names (model_best.pth.tar)
    candidates = [cache_dir() / "weights" / folder / name]
    if w.format == "torchvision":  # reuse a file torch.hub already downloaded
        torch_home = Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch")
        candidates.append(torch_home / "hub" / "checkpoints" / name)
    for path in candidates:
        if path.is_file():
            return path
    if not w.url:
        made = f", or run '{w.made_by}', which makes it" if w.made_by else ""
        raise BenchError(f"weights for '{card.name}' not found at {candidates[0]}", f"place the checkpoint file there{made}")
    if not fetch:
        raise BenchError(f"weights for '{card.name}' are not downloaded yet", f"'bench run' fetches {w.url} to {candidates[0]}")
    return download(w.url, candidates[0], w.sha256, progress)
