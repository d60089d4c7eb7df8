"""Generated ImageNet-C: ImageNet val corrupted by a maintained corruption library, cached.

When the released ImageNet-C is not on disk (`--set source=generated`), each val image goes
through ImageNet-C's own recipe: the card's resize and center crop (256 / 224 for ImageNet
cards, as ImageNet-C was made), the corruption at a severity, then a JPEG save at quality 85.
The corruptions come from `imagecorruptions-imaug` (the maintained fork: the original
`imagecorruptions` 1.1.2 fails on glass_blur, fog and gaussian_blur with current numpy and
scikit-image). The images are not bit-identical to the released ones (other random draws, a
re-implementation of some corruptions), so records say `generated` and tables never mix the two
silently.

The cache lives under $BENCH_CACHE/imagenet_c/<library>-<version>/<source key>/ in the released
layout, keyed by the library version, the val data's fingerprint, the pipeline and the seed;
each image's random draws are seeded by (seed, corruption, severity, image index). Images are
written atomically and each finished (corruption, severity) folder gets a manifest, so an
interrupted build resumes where it stopped; workers each take whole images (decoded once, every
missing cell written).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from bench.data.imagenet_c import MANIFEST
from bench.errors import BenchError

LIBRARY = "imagecorruptions-imaug"
PINNED = "1.1.5"
JPEG_QUALITY = 85  # as the released ImageNet-C (make_imagenet_c.py: quality=85, optimize=True)
SEEDED_BY_ARGUMENT = ("glass_blur", "impulse_noise")  # take their seed as an argument; the rest draw from numpy's global state


def library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(LIBRARY)
    except PackageNotFoundError:
        raise BenchError(f"generated corruptions need the {LIBRARY} package, which is not installed", f"pip install {LIBRARY}=={PINNED}") from None


def _corrupt_fn() -> Callable[..., np.ndarray]:
    try:
        from imagecorruptions import corrupt
    except ImportError as exc:
        raise BenchError(f"cannot import imagecorruptions ({exc})",
                         f"pip install {LIBRARY}=={PINNED}; if cv2 lacks libGL, pip install --force-reinstall --no-deps opencv-python-headless") from None
    return corrupt


def check_size(crop: int) -> None:
    if crop < 32:
        raise BenchError(f"generated corruptions need images of at least 32x32 pixels, but the card's crop is {crop}", "use a card whose crop is at least 32")


def image_seed(seed: int, corruption: str, severity: int, index: int) -> int:
    """A 32-bit seed per (run seed, corruption, severity, image), stable across processes and machines."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{corruption}/{severity}/{index}".encode()).digest()[:4], "little")


def corrupt_to_jpeg(pixels: np.ndarray, corruption: str, severity: int, seed: int) -> bytes:
    """One HxWx3 uint8 image corrupted with its own seed, as the JPEG bytes ImageNet-C stores."""
    from PIL import Image

    corrupt = _corrupt_fn()
    np.random.seed(seed)
    kwargs = {"seed": seed} if corruption in SEEDED_BY_ARGUMENT else {}
    out = corrupt(np.ascontiguousarray(pixels), severity=severity, corruption_name=corruption, **kwargs)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(out, dtype=np.uint8)).save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# The per-image work, at module level so that worker processes can run it: (index, pixel source,
# output names, cells still missing for this image, seed). `pixels` is a file path (decoded with
# the pipeline) or an array.
_PIPELINE: dict[str, Any] = {}


def _init_worker(pipeline: dict[str, Any]) -> None:
    from torchvision import transforms

    _PIPELINE.clear()
    _PIPELINE.update(pipeline)
    if "resize" in pipeline:  # the clean pipeline, built once per process
        _PIPELINE["transform"] = transforms.Compose([
            transforms.Resize(pipeline["resize"], interpolation=transforms.InterpolationMode(pipeline["interpolation"])),
            transforms.CenterCrop(pipeline["crop"]),
        ])


def _decode(source: Any) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    from bench.data.images import load_rgb

    return np.asarray(_PIPELINE["transform"](load_rgb(source)))


def _one_image(job: tuple[int, Any, str, list[tuple[str, int]], int]) -> int:
    index, source, rel, cells, seed = job
    pixels = _decode(source)
    root = Path(_PIPELINE["root"])
    for corruption, severity in cells:
        out = root / corruption / str(severity) / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(out, corrupt_to_jpeg(pixels, corruption, severity, image_seed(seed, corruption, severity, index)))
    return len(cells)


def manifest(pipeline: dict[str, Any], seed: int, corruption: str, severity: int, n: int) -> dict[str, Any]:
    return {"library": LIBRARY, "version": library_version(), "seed": seed, "corruption": corruption, "severity": severity, "images": n,
            "jpeg_quality": JPEG_QUALITY, **{k: pipeline[k] for k in ("resize", "crop", "interpolation", "source") if k in pipeline}}


def check_manifest(found: dict[str, Any], where: Path) -> None:
    """A cache cell written by another library version would mix two generators: refuse it."""
    installed = library_version()
    if found.get("library") != LIBRARY or found.get("version") != installed:
        raise BenchError(
            f"generated ImageNet-C cell {where} was written by {found.get('library')} {found.get('version')}, but {LIBRARY} {installed} is installed",
            f"delete {where.parent.parent} to regenerate it with {installed}, or install {found.get('library')}=={found.get('version')}",
        )


def generate(root: Path, sources: Sequence[Any], rel_paths: Sequence[str], cells: Sequence[tuple[str, int]], seed: int,
             pipeline: dict[str, Any], workers: int = 0, progress: bool = False, manifests: bool = True) -> dict[str, int]:
    """Write every missing image of every cell under root (released layout) and each finished
    cell's manifest (manifests=False: none, as in the released files; the mini benchmark's
    writer, whose whole folder has its own completion marker). sources[i] is an image file (decoded with pipeline's resize / crop) or an
    HxWx3 uint8 array; rel_paths[i] is '<wnid>/<name>.JPEG'. Returns counts written / reused."""
    from tqdm import tqdm

    _corrupt_fn()  # a missing or broken library fails here, in one line, before any worker starts
    pipeline = {**pipeline, "root": str(root)}
    todo_cells = []
    for corruption, severity in cells:
        folder = root / corruption / str(severity)
        if (folder / MANIFEST).is_file():
            check_manifest(json.loads((folder / MANIFEST).read_text()), folder)
        else:
            todo_cells.append((corruption, severity))
    jobs = []
    reused = 0
    for i, (source, rel) in enumerate(zip(sources, rel_paths)):
        missing = [cell for cell in todo_cells if not (root / cell[0] / str(cell[1]) / rel).is_file()]
        reused += len(todo_cells) - len(missing)
        if missing:
            jobs.append((i, source, rel, missing, seed))
    written = 0
    bar = tqdm(total=sum(len(j[3]) for j in jobs), desc="generating ImageNet-C", unit="img", disable=not progress or not jobs, leave=False)
    if workers > 0 and len(jobs) > 1:
        import multiprocessing as mp

        if any(c == "glass_blur" for job in jobs for c, _ in job[3]):  # numba compiles it once here, and the forked workers inherit it
            corrupt_to_jpeg(np.zeros((32, 32, 3), np.uint8), "glass_blur", 1, 0)

        with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(pipeline,)) as pool:
            for n in pool.imap_unordered(_one_image, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers)))):
                written += n
                bar.update(n)
    else:
        _init_worker(pipeline)
        for job in jobs:
            n = _one_image(job)
            written += n
            bar.update(n)
    bar.close()
    for corruption, severity in todo_cells if manifests else []:
        folder = root / corruption / str(severity)
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / MANIFEST, json.dumps(manifest(pipeline, seed, corruption, severity, len(rel_paths)), indent=1).encode())
    return {"written": written, "reused": reused}


def cache_root(source_fingerprint: str, pipeline: dict[str, Any], seed: int) -> Path:
    """$BENCH_CACHE/imagenet_c/<library>-<version>/<val fingerprint, pipeline, seed>."""
    from bench.paths import cache_dir

    key = f"{source_fingerprint}-r{pipeline['resize']}-c{pipeline['crop']}-{pipeline['interpolation']}-s{seed}"
    return cache_dir() / "imagenet_c" / f"{LIBRARY}-{library_version()}" / key
