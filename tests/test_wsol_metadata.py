"""wsolevaluation's metadata format: round trip, several boxes per image, and bad files."""

from __future__ import annotations

import pytest

from bench.data.wsol_metadata import WsolMetadata, read_wsol_metadata, write_wsol_metadata
from bench.errors import BenchError

META = WsolMetadata(
    ["001.A/a_1.jpg", "002.B/b_2.jpg"],
    {"001.A/a_1.jpg": 0, "002.B/b_2.jpg": 1},
    {"001.A/a_1.jpg": (500, 375), "002.B/b_2.jpg": (64, 64)},
    {"001.A/a_1.jpg": [(1, 2, 30, 40)], "002.B/b_2.jpg": [(0, 0, 10, 10), (20, 20, 63, 63)]},
)


def test_round_trip(tmp_path):
    assert read_wsol_metadata(write_wsol_metadata(tmp_path, META)) == META
    assert (tmp_path / "localization.txt").read_text().count("002.B/b_2.jpg") == 2


@pytest.mark.parametrize(
    "file,edit,message",
    [
        ("localization.txt", lambda t: t.replace("1,2,30,40", "31,2,30,40"), "x1 < x0"),
        ("localization.txt", lambda t: t.replace("001.A/a_1.jpg,1,2,30,40\n", ""), "no entry in .*localization.txt \\(e.g. 001.A/a_1.jpg\\)"),
        ("class_labels.txt", lambda t: t + "003.C/c.jpg,2\n", "names image '003.C/c.jpg', which image_ids.txt does not list"),
        ("image_sizes.txt", lambda t: t.replace("500,375", "500"), "line 1 is malformed"),
        ("class_labels.txt", lambda t: t.replace(",1\n", ",one\n"), "non-numeric"),
    ],
)
def test_bad_metadata(tmp_path, file, edit, message):
    write_wsol_metadata(tmp_path, META)
    path = tmp_path / file
    path.write_text(edit(path.read_text()))
    with pytest.raises(BenchError, match=message):
        read_wsol_metadata(tmp_path)
