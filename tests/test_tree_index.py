"""The tree index behind the released ImageNet-C data check: its answers equal a full listing, and
it sees what its docstring says it sees (and misses what it says it misses)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.data.imagenet_c import ALL_CORRUPTIONS, read_imagenet_c, summarize_imagenet_c
from bench.errors import BenchError

CORRUPTIONS = list(ALL_CORRUPTIONS[:3])
SEVERITIES = [1, 2]
CLASSES = [f"n{k:08d}" for k in range(4)]


def _tree(root: Path) -> Path:
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            for k, wnid in enumerate(CLASSES):
                folder = root / c / str(s) / wnid
                folder.mkdir(parents=True)
                for i in range(k + 1):  # classes of different sizes
                    (folder / f"img_{i}.JPEG").write_bytes(bytes(10 + i))
                (folder / "notes.txt").write_text("not an image")
    _age(root)
    return root


def _age(root: Path) -> None:
    """Every folder's mtime well in the past, so that the index trusts it (it distrusts fresh ones)."""
    past = time.time() - 60
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        os.utime(folder, (past, past))


def _check(root: Path, sample: int = 0):
    return summarize_imagenet_c(root, CORRUPTIONS, SEVERITIES, len(CLASSES), sample=sample)


@pytest.fixture
def tree(tmp_path) -> Path:
    return _tree(tmp_path / "ImageNet-C")


def test_summary_equals_the_full_listing_cold_and_warm(tree):
    listing = read_imagenet_c(tree, CORRUPTIONS, SEVERITIES, len(CLASSES))
    cold, warm = _check(tree), _check(tree)
    assert cold.n_images == warm.n_images == len(listing.images) == len(CORRUPTIONS) * len(SEVERITIES) * (1 + 2 + 3 + 4)
    assert cold.cells == warm.cells == listing.cells and cold.classes == warm.classes == listing.classes
    assert cold.fingerprint == warm.fingerprint
    folders = 1 + len(CORRUPTIONS) * (1 + len(SEVERITIES) * (1 + len(CLASSES))) - 1  # the corruption, cell and class folders
    assert cold.index["read"] == cold.index["folders"] == folders
    assert warm.index == {"folders": folders, "read": 0, "sampled": 0, "changed": 0}


@pytest.mark.parametrize("change", ["add", "remove", "rename", "class folder", "non-image"])
def test_what_the_folder_mtimes_catch(tree, change):
    before = _check(tree)
    folder = tree / CORRUPTIONS[1] / "2" / CLASSES[2]
    if change == "add":
        (folder / "img_9.JPEG").write_bytes(b"x")
    elif change == "remove":
        (folder / "img_0.JPEG").unlink()
    elif change == "rename":
        (folder / "img_0.JPEG").rename(folder / "img_8.JPEG")
    elif change == "class folder":
        for f in (tree / CORRUPTIONS[1] / "2" / CLASSES[3]).iterdir():
            f.unlink()
        (tree / CORRUPTIONS[1] / "2" / CLASSES[3]).rmdir()
        with pytest.raises(BenchError, match="lacks class folder"):
            _check(tree)
        return
    else:
        (folder / "more_notes.txt").write_text("still not an image")
    after = _check(tree)
    assert after.index["read"] == 1  # only the folder whose mtime moved is read again
    if change == "non-image":
        assert after.fingerprint == before.fingerprint  # the data scored did not change
    else:
        assert after.fingerprint != before.fingerprint
        full = summarize_imagenet_c(tree, CORRUPTIONS, SEVERITIES, len(CLASSES), sample=0)
        assert full.fingerprint == after.fingerprint


def test_an_in_place_rewrite_is_caught_in_a_sampled_folder_only(tree, monkeypatch):
    before = _check(tree)
    victim = tree / CORRUPTIONS[0] / "1" / CLASSES[1] / "img_0.JPEG"
    stamp = os.stat(victim.parent).st_mtime_ns
    victim.write_bytes(bytes(99))  # another size, same name: the folder's mtime stays
    os.utime(victim.parent, ns=(stamp, stamp))
    assert _check(tree, sample=0).fingerprint == before.fingerprint  # not sampled: the documented blind spot
    caught = _check(tree, sample=10**6)  # every folder sampled
    assert caught.fingerprint != before.fingerprint and caught.index["changed"] == 1
    assert _check(tree, sample=0).fingerprint == caught.fingerprint  # and the index keeps the new state
    # the same size with a new mtime is re-read when sampled, and (names and sizes) the fingerprint stays
    os.utime(victim, (time.time() - 5, time.time() - 5))
    again = _check(tree, sample=10**6)
    assert again.index["changed"] == 1 and again.fingerprint == caught.fingerprint


def test_a_folder_written_just_now_is_read_again(tree):
    _check(tree)
    folder = tree / CORRUPTIONS[2] / "1" / CLASSES[0]
    (folder / "img_5.JPEG").write_bytes(b"y")  # its mtime is now: a coarse clock could hide a second write
    assert _check(tree).index["read"] == 1
    assert _check(tree).index["read"] == 1  # still too fresh to trust
    _age(tree)
    _check(tree)
    assert _check(tree).index["read"] == 0


def test_empty_class_folders_and_a_read_only_cache(tree, monkeypatch, tmp_path):
    for f in (tree / CORRUPTIONS[0] / "2" / CLASSES[0]).iterdir():
        f.unlink()
    with pytest.raises(BenchError, match=r"class folder .*n00000000 has no images"):
        _check(tree)
    with pytest.raises(BenchError, match=r"class folder .*n00000000 has no images"):
        read_imagenet_c(tree, CORRUPTIONS, SEVERITIES, len(CLASSES))
    (tree / CORRUPTIONS[0] / "2" / CLASSES[0] / "img_0.JPEG").write_bytes(b"z")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("BENCH_CACHE", str(blocked))
    assert _check(tree).n_images == _check(tree).n_images == len(read_imagenet_c(tree, CORRUPTIONS, SEVERITIES, len(CLASSES)).images)
