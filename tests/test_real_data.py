"""The real Quick, Draw! files in ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from electric_sheep.cli import main
from electric_sheep.data import drawings as data

FILES = [
    "quickdraw/bitmap/sheep.npy",
    "quickdraw/bitmap/cat.npy",
    "quickdraw/raw/sheep.ndjson",
    "quickdraw/raw/car.ndjson",
    "aaron_sheep.npz",
    "omniglot.npz",
]


@pytest.mark.parametrize("name", FILES)
def test_show_writes_a_grid_for_every_shared_file(shared, tmp_path, name):
    out = tmp_path / "grid.png"
    r = CliRunner().invoke(main, ["show", str(shared / name), "-n", "16", "-o", str(out)])
    assert r.exit_code == 0, r.output
    img = np.asarray(Image.open(out))
    assert img.shape == ((4 * 30 + 2) * 3, (4 * 30 + 2) * 3)  # 4x4 tiles of 28 px + 2 px gaps, x3
    assert img.min() == 0 and img.max() == 255  # black ink on white paper


def test_real_files_load_with_expected_sizes(shared):
    assert data.load_drawings(shared / "quickdraw/bitmap/sheep.npy").images.shape == (1000, 28, 28)
    aaron = data.load_drawings(shared / "aaron_sheep.npz")
    assert {k: len(v) for k, v in aaron.splits.items()} == {"train": 7400, "valid": 300, "test": 300}
    raw = data.load_drawings(shared / "quickdraw/raw/car.ndjson")
    assert len(raw) >= 16 and raw.skipped == 0


def test_rasterised_raw_sheep_ink_matches_google_bitmaps(shared):
    google = data.load_drawings(shared / "quickdraw/bitmap/sheep.npy").mean_ink()
    ours = data.load_drawings(shared / "quickdraw/raw/sheep.ndjson").mean_ink()
    assert abs(ours - google) / google < 0.1, (ours, google)
