"""Each Quick, Draw! format, from small files the tests write themselves."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_bin, write_bitmap, write_ndjson, write_sketchrnn

from electric_sheep.cli import main
from electric_sheep.data import drawings as data
from electric_sheep.data import formats, strokes
from electric_sheep.data.raster import RasterConfig, render, stroke3_to_strokes


def test_bitmap_is_memory_mapped_and_split_reproducibly(tmp_path):
    path = write_bitmap(tmp_path / "sheep.npy", n=50)
    d = data.load_drawings(path, seed=3)
    assert d.format == "bitmap" and d.images.shape == (50, 28, 28) and d.images.dtype == np.uint8
    assert isinstance(d.images, np.memmap)
    np.testing.assert_array_equal(d.images.reshape(50, 784), np.load(path))
    sizes = {k: len(v) for k, v in d.splits.items()}
    assert sizes == {"train": 40, "valid": 5, "test": 5}
    assert sorted(np.concatenate(list(d.splits.values())).tolist()) == list(range(50))
    again = data.load_drawings(path, seed=3)
    other = data.load_drawings(path, seed=4)
    assert all(np.array_equal(d.splits[k], again.splits[k]) for k in formats.SPLITS)
    assert not np.array_equal(d.splits["train"], other.splits["train"])
    assert d.split("train", limit=7).shape == (7, 28, 28)


def test_bitmap_images_with_a_channel_axis_are_read_as_they_are(tmp_path):
    """Arrays saved from Keras (N, 28, 28, 1) or PyTorch (N, 1, 28, 28) are the same drawings,
    memory-mapped, not copied; one drawing alone is refused with the line that saves it as a file."""
    rows = np.load(write_bitmap(tmp_path / "rows.npy", n=12))
    for shape in [(12, 28, 28), (12, 28, 28, 1), (12, 1, 28, 28), (12, 1, 784)]:
        path = tmp_path / f"{'x'.join(map(str, shape))}.npy"
        np.save(path, rows.reshape(shape))
        d = data.load_drawings(path)
        assert isinstance(d.images, np.memmap) and np.array_equal(d.images.reshape(12, 784), rows), shape
    for shape in [(784,), (28, 28)]:
        np.save(tmp_path / "one.npy", rows[0].reshape(shape))
        with pytest.raises(data.DataError, match=r"expected \(N, 784\).*one drawing\? save it as x.reshape\(1, 784\)"):
            data.load_drawings(tmp_path / "one.npy")
    np.save(tmp_path / "rgb.npy", np.repeat(rows.reshape(12, 28, 28, 1), 3, axis=3))
    with pytest.raises(data.DataError, match=r"shape is \(12, 28, 28, 3\), expected \(N, 784\) rows of 28x28 pixels$"):
        data.load_drawings(tmp_path / "rgb.npy")


def _kaggle_csv(ndjson, path, columns=("countrycode", "drawing", "key_id", "recognized", "timestamp", "word")):
    """The drawings of an .ndjson as a Kaggle CSV (its JSON strokes a quoted column); a bad line a bad row."""
    import csv

    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(columns)
        for line in ndjson.read_text().splitlines():
            try:
                rec = json.loads(line) | {"timestamp": "2017-03-09 00:28:55.637750"}
            except ValueError:
                rec = {"drawing": line[30:], "key_id": "x", "recognized": "True"}  # a cut-off drawing
            out.writerow([rec.get(c) if c != "drawing" else json.dumps(rec[c]) if isinstance(rec[c], list) else rec[c]
                          for c in columns])  # fmt: skip
    return path


@pytest.mark.filterwarnings("ignore:.*skipped 1 malformed")
def test_kaggle_csv_is_read_as_the_ndjson_it_came_from(tmp_path):
    """The Kaggle Doodle Recognition Challenge's CSVs (train: with `recognized`; test: without),
    plain or gzipped, give the drawings of the .ndjson they hold; a broken row is skipped and counted."""
    import gzip

    nd = write_ndjson(tmp_path / "a.ndjson", n=10, raw=True, bad_lines=1)
    train = _kaggle_csv(nd, tmp_path / "train.csv")
    d, c = data.load_drawings(nd, use_cache=False), data.load_drawings(train, use_cache=False)
    assert c.format == "csv" and c.skipped == d.skipped == 1 and np.array_equal(c.images, d.images)
    for flag in (True, False):
        assert np.array_equal(
            data.load_drawings(train, recognized=flag).images, data.load_drawings(nd, recognized=flag).images
        )
    test = _kaggle_csv(nd, tmp_path / "test.csv", columns=("key_id", "countrycode", "drawing"))
    assert np.array_equal(data.load_drawings(test, use_cache=False).images, d.images)
    packed = tmp_path / "train.csv.gz"
    packed.write_bytes(gzip.compress(train.read_bytes()))
    assert data.load_drawings(packed, use_cache=False).format == "csv"
    assert np.array_equal(data.load_drawings(packed, use_cache=False).images, d.images)
    (tmp_path / "other.csv").write_text("name,age\nDolly,6\n")  # a CSV, not of drawings
    with pytest.raises(data.DataError, match="other.csv: unrecognised format"):
        data.load_drawings(tmp_path / "other.csv")


@pytest.mark.filterwarnings("ignore:.*skipped 2 malformed")
def test_gzipped_strokes_are_read_as_they_are_decompressed(tmp_path, monkeypatch):
    """A gzipped .ndjson or .bin gives the same drawings as the file itself; a gzipped .npy (which
    cannot be memory-mapped), a damaged gzip and a gzip bomb are each refused in one line."""
    import gzip

    for plain in (write_ndjson(tmp_path / "a.ndjson", n=12, bad_lines=2), write_bin(tmp_path / "b.bin", n=6)):
        packed = tmp_path / f"{plain.name}.gz"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        d, z = data.load_drawings(plain, use_cache=False), data.load_drawings(packed, use_cache=False)
        assert z.format == d.format and z.skipped == d.skipped and np.array_equal(z.images, d.images), plain
    npy = write_bitmap(tmp_path / "c.npy")
    (tmp_path / "c.npy.gz").write_bytes(gzip.compress(npy.read_bytes()))
    with pytest.raises(data.DataError, match="c.npy.gz: is a gzipped .npy: gunzip it first"):
        data.load_drawings(tmp_path / "c.npy.gz")
    (tmp_path / "d.ndjson.gz").write_bytes(gzip.compress(b'{"drawing": []}\n' * 100)[:40])
    with pytest.raises(data.DataError, match="d.ndjson.gz: is a damaged gzip file"):
        data.load_drawings(tmp_path / "d.ndjson.gz")
    for plain in (tmp_path / "a.ndjson", tmp_path / "b.bin", _kaggle_csv(tmp_path / "a.ndjson", tmp_path / "a.csv")):
        whole = gzip.compress(plain.read_bytes() * 40)  # damaged past the first records that tell the format
        flipped = bytearray(whole)
        flipped[len(whole) // 2] ^= 0xFF
        for packed in (whole[: len(whole) // 2], bytes(flipped)):  # cut short; a byte flipped
            (tmp_path / "damaged.gz").write_bytes(packed)
            with pytest.raises(data.DataError, match="damaged.gz: is a damaged gzip file"):
                data.load_drawings(tmp_path / "damaged.gz", use_cache=False)
    line = (tmp_path / "a.ndjson").read_bytes().splitlines(keepends=True)[0]
    (tmp_path / "e.ndjson.gz").write_bytes(gzip.compress(line * (2**21 // len(line) + 1)))  # 2 MiB in a few KB
    (tmp_path / "f.ndjson.gz").write_bytes(gzip.compress(line + b" " * 2**21))  # one endless line
    monkeypatch.setattr(strokes, "MAX_GZIP_RATIO", 1)
    for bomb in ("e.ndjson.gz", "f.ndjson.gz"):
        with pytest.raises(data.DataError, match=f"{bomb}: unpacks to over 1 times its size"):
            data.load_drawings(tmp_path / bomb, use_cache=False)


def test_format_detected_from_content_not_name(tmp_path):
    path = write_bitmap(tmp_path / "x.npy")
    renamed = tmp_path / "drawings.dat"
    path.rename(renamed)
    assert data.load_drawings(renamed).format == "bitmap"
    nd = write_ndjson(tmp_path / "a.txt")
    assert formats.detect_format(nd) == "ndjson"
    b = write_bin(tmp_path / "a.data")
    assert formats.detect_format(b) == "bin"
    s = write_sketchrnn(tmp_path / "s.bin")
    assert formats.detect_format(s) == "sketchrnn"


@pytest.mark.parametrize("raw", [False, True])
def test_ndjson_simplified_and_raw(tmp_path, raw):
    path = write_ndjson(tmp_path / "squares.ndjson", n=10, raw=raw)
    d = data.load_drawings(path)
    assert d.format == "ndjson" and d.images.shape == (10, 28, 28) and d.skipped == 0
    # A square with a diagonal: the border and the diagonal are inked, the rest is background.
    img = d.images[0]
    assert img.max() == 255 and img[14, 14] > 100 and img[8, 20] == 0
    recognised = data.load_drawings(path, recognized=True)
    assert len(recognised) == 5


def test_ndjson_malformed_line_is_skipped_and_counted(tmp_path):
    path = write_ndjson(tmp_path / "squares.ndjson", n=6, bad_lines=2)
    d = data.load_drawings(path)
    assert len(d) == 6 and d.skipped == 2


def test_drawings_without_points_are_skipped_not_blank(tmp_path):
    """No strokes, empty strokes or infinite coordinates would render as a blank image."""
    path = write_ndjson(tmp_path / "squares.ndjson", n=3)
    empty = [[], [[[], []]], [[[float("inf"), 2], [0, 1]]]]
    with open(path, "a") as f:
        f.writelines(json.dumps({"word": "square", "drawing": d}) + "\n" for d in empty)
    d = data.load_drawings(path)
    assert len(d) == 3 and d.skipped == 3 and (d.images.reshape(3, -1).max(1) > 0).all()
    binary = write_bin(tmp_path / "squares.bin", n=4)
    with open(binary, "ab") as f:  # one more record, with no strokes at all
        f.write(struct.pack("<Q2sbIH", 99, b"GB", 1, 1490000000, 0))
    d = data.load_drawings(binary)
    assert len(d) == 4 and d.skipped == 1
    squares = np.array([[0, 0, 0], [20, 0, 0], [0, 20, 0], [-20, 0, 1]], dtype=np.float32)
    no_point, not_finite = np.zeros((0, 3), np.float32), squares.copy()
    not_finite[1, 0] = np.nan
    parts = {name: np.array([squares, no_point, not_finite, None], dtype=object)[:-1] for name in data.SPLITS}
    with open(tmp_path / "sketches.npz", "wb") as f:
        np.savez(f, **parts)
    d = data.load_drawings(tmp_path / "sketches.npz")
    assert len(d) == 3 and d.skipped == 6 and [len(d.split(name)) for name in data.SPLITS] == [1, 1, 1]


def test_bin_format(tmp_path):
    path = write_bin(tmp_path / "squares.bin", n=6)
    d = data.load_drawings(path)
    assert d.format == "bin" and d.images.shape == (6, 28, 28)
    assert len(data.load_drawings(path, recognized=True)) == 3
    records = list(strokes.iter_bin(path))
    assert records[0]["countrycode"] == "US" and records[0]["key_id"] == 1000
    assert records[0]["strokes"][0][:, 0].tolist() == [10, 200, 200, 10, 10]


def test_sketchrnn_keeps_given_splits(tmp_path):
    path = write_sketchrnn(tmp_path / "squares.npz", sizes=(12, 3, 4))
    d = data.load_drawings(path)
    assert d.format == "sketchrnn" and len(d) == 19
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 12, "valid": 3, "test": 4}
    np.testing.assert_array_equal(d.split("valid"), d.images[12:15])


def test_stroke_cache_makes_second_load_a_plain_read(tmp_path):
    path = write_sketchrnn(tmp_path / "squares.npz")
    first = data.load_drawings(path)
    assert "cached" not in first.meta
    second = data.load_drawings(path)
    assert "cached" in second.meta
    np.testing.assert_array_equal(first.images, second.images)
    assert all(np.array_equal(first.splits[k], second.splits[k]) for k in formats.SPLITS)


def test_unwritable_cache_only_skips_caching(tmp_path):
    """A cache folder that cannot be created (a file in its way) must not stop a load."""
    path = write_sketchrnn(tmp_path / "squares.npz")
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    for _ in range(2):
        d = data.load_drawings(path, cache_dir=blocker)
        assert len(d.images) == 18 and "cached" not in d.meta


def test_stroke3_conversion_and_render_fit():
    s3 = np.array([[5, 5, 0], [10, 0, 0], [0, 10, 1], [3, 3, 0], [4, 0, 1]], dtype=np.int16)
    strokes = stroke3_to_strokes(s3)
    assert [len(s) for s in strokes] == [3, 2]
    np.testing.assert_array_equal(strokes[0][-1], [15, 15])
    img = render(strokes, RasterConfig())
    assert img.shape == (28, 28) and img.dtype == np.uint8
    # The drawing is fitted: ink reaches within the padding of the edges on the wide axis.
    cols = np.flatnonzero(img.max(axis=0) > 0)
    assert cols.min() <= 2 and cols.max() >= 25


def test_categories_and_suggestions():
    cats = data.categories()
    assert len(cats) == 345 and "sheep" in cats and "The Eiffel Tower" in cats
    assert data.check_category("SHEEP") == "sheep"
    with pytest.raises(data.DataError, match="did you mean 'sheep'"):
        data.check_category("shepe")


def test_category_name_resolves_to_cache(tmp_path):
    target = data.cached_category_path("sheep", "bitmap", tmp_path)
    target.parent.mkdir(parents=True)
    write_bitmap(target, n=10)
    assert data.load_drawings("sheep", cache_dir=tmp_path).source == target
    with pytest.raises(data.DataError, match="not downloaded yet"):
        data.load_drawings("cat", cache_dir=tmp_path)


def _picture(strokes, size=(600, 450), width=4, paper="white", ink="black", mode="RGB"):
    """Strokes drawn big, as a drawing app would export them."""
    from PIL import Image, ImageDraw

    pts = np.concatenate(strokes)
    lo, extent = pts.min(axis=0), (pts.max(axis=0) - pts.min(axis=0)).max()
    scale = (min(size) - 60) / extent
    img = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(img)
    for s in strokes:
        pen.line(((s - lo) * scale + 30).ravel().tolist(), fill=ink, width=width)
    return img


def test_a_picture_becomes_the_bitmap_its_strokes_would_render_to():
    """Any size, pen, paper colour, transparent background or light: the same 28x28 drawing as
    render()."""
    from electric_sheep.data.pictures import picture_to_bitmap

    strokes = [np.array([[0, 0], [60, 0], [60, 40], [0, 40], [0, 0]], float), np.array([[10, 40], [10, 70]], float)]
    reference = render(strokes).astype(float)
    pictures = {
        "black on white": _picture(strokes),
        "thin pen, small": _picture(strokes, size=(200, 150), width=1),
        "thick marker": _picture(strokes, size=(1200, 900), width=24),
        "white on black": _picture(strokes, paper="black", ink="white"),
        "transparent paper": _picture(strokes, paper=(0, 0, 0, 0), ink=(30, 30, 200, 255), mode="RGBA"),
    }
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for name, grain, light in [("grainy, unevenly lit scan", 30, 60), ("thin pen, unevenly lit", 0, 60)]:
        clean = np.asarray(_picture(strokes, width=1 if grain == 0 else 4, paper=(210,) * 3, ink=(50,) * 3), float)
        shaded = clean + rng.normal(0, grain, clean.shape) - np.linspace(0, light, clean.shape[1])[None, :, None]
        pictures[name] = Image.fromarray(np.clip(shaded, 0, 255).astype(np.uint8))
    # Photos under uneven light (the grey a pencil line and the paper reflect, times the light):
    # a hard shadow over most of the page and its border, a pen's shadow across the drawing, and
    # the sheet lying on a dark table that fills the border. One threshold fails each of them.
    reflect = np.asarray(_picture(strokes, paper=(230,) * 3, ink=(25,) * 3).convert("L"), float)
    yy, xx = np.mgrid[0 : reflect.shape[0], 0 : reflect.shape[1]]
    for name, lit in [
        ("hard shadow over most of the page", np.where(xx + 0.5 * yy < 400, 0.35, 1.0)),
        ("a pen's shadow across the drawing", np.where(abs(xx - 0.7 * yy - 200) < 40, 0.5, 1.0)),
    ]:
        pictures[name] = Image.fromarray(np.clip(reflect * lit + rng.normal(0, 10, lit.shape), 0, 255).astype(np.uint8))
    # Chalk on a blackboard, the light on it falling off across the board: a dark "paper", and
    # holes of board inside the chalk loops that a dark-ink reading takes for ink.
    chalk = (230 - reflect) / 205  # 1 on the lines, 0 elsewhere
    board = 40 + 170 * chalk * np.linspace(1.0, 0.4, reflect.shape[1])[None, :] + rng.normal(0, 8, reflect.shape)
    pictures["chalk on a blackboard, uneven light"] = Image.fromarray(np.clip(board, 0, 255).astype(np.uint8))
    on_table = 60 + rng.normal(0, 6, (650, 800))
    on_table[100:550, 100:700] = reflect + rng.normal(0, 4, reflect.shape)
    pictures["sheet on a dark table"] = Image.fromarray(np.clip(on_table, 0, 255).astype(np.uint8))
    # A 12-megapixel phone photo of a fine pen (3 px, 0.2 mm on a page that fills it) under a
    # hard shadow: the lines must survive the reading of its colour and of its grain.
    fine = np.asarray(_picture(strokes, size=(4000, 3000), width=3, paper=(230,) * 3, ink=(25,) * 3).convert("L"))
    rows, cols = np.mgrid[0:3000, 0:4000]
    fine = fine * np.where(cols + 0.5 * rows < 2000, 0.45, 1.0) + rng.normal(0, 10, fine.shape)
    pictures["phone photo, fine pen, hard shadow"] = Image.fromarray(np.clip(fine, 0, 255).astype(np.uint8))
    eight_bit = np.asarray(pictures["black on white"].convert("L"))
    pictures["16-bit scan"] = Image.fromarray(eight_bit.astype(np.uint16) * 257)  # Pillow's "L" would be all white
    pictures["float picture"] = Image.fromarray(eight_bit.astype(np.float32) / 255)
    dusty = _picture(strokes)  # a speck of dust in a corner must not stretch the drawing's box
    ImageDraw.Draw(dusty).rectangle((570, 420, 572, 422), fill="black")  # 3x3 px
    pictures["speck of dust in a corner"] = dusty
    page = Image.new("L", (2000, 2000), "white")  # a small sketch on a big page: 0.04% ink
    page.paste(_picture(strokes, size=(260, 200), width=2).convert("L"), (300, 900))
    pictures["small sketch, big page"] = page
    for name, picture in pictures.items():
        bitmap = picture_to_bitmap(picture)
        assert bitmap.shape == (28, 28) and bitmap.dtype == np.uint8, name
        assert np.corrcoef(reference.ravel(), bitmap.ravel())[0, 1] > 0.9, name
        assert abs(bitmap.mean() - reference.mean()) < 0.25 * reference.mean(), name
    assert picture_to_bitmap(_picture(strokes, ink="white")) is None  # white on white: blank
    # A blurred photo (3 px) under a 30% shadow: its lines in the shade are fainter than a
    # blackboard's grain would be, and must still be read as lines, not as a blank page.
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(reflect * np.where(xx + 0.5 * yy < 400, 0.3, 1.0), 3)
    blurred = picture_to_bitmap(
        Image.fromarray(np.clip(blurred + rng.normal(0, 10, blurred.shape), 0, 255).astype(np.uint8))
    )
    assert blurred is not None and np.corrcoef(reference.ravel(), blurred.ravel())[0, 1] > 0.8
    # The same blur and shadow on a sheep of separate strokes (body, head, four legs): in the shade
    # the legs fall short of halfway to the ink in stretches, and read at one threshold their
    # broken pieces were taken for stray marks (correlation 0.43; hysteresis: 0.91-0.95).
    t = np.linspace(0, 2 * np.pi, 25)
    legs = [np.array([[x, 47], [x, 67]], float) for x in (12, 24, 38, 50)]
    sheep = [np.c_[30 + 30 * np.cos(t), 30 + 18 * np.sin(t)], np.c_[70 + 8 * np.cos(t), 22 + 8 * np.sin(t)], *legs]
    lines = np.asarray(_picture(sheep, paper=(230,) * 3, ink=(25,) * 3).convert("L"), float)
    shaded = ndimage.gaussian_filter(lines * np.where(xx + 0.5 * yy < 400, 0.45, 1.0), 3)
    bitmap = picture_to_bitmap(
        Image.fromarray(np.clip(shaded + rng.normal(0, 10, shaded.shape), 0, 255).astype(np.uint8))
    )
    assert bitmap is not None and np.corrcoef(render(sheep).ravel(), bitmap.ravel())[0, 1] > 0.85


def test_pictures_load_from_a_file_or_a_folder(tmp_path):
    """A folder: its pictures in name order, the rest ignored, blank or broken ones skipped with a
    warning; every split holds all of them (pictures are for using a model)."""
    from electric_sheep.errors import SheepWarning

    square = [np.array([[0, 0], [50, 0], [50, 50], [0, 50], [0, 0]], float)]
    _picture(square).save(tmp_path / "b_square.png")
    _picture(square, size=(300, 300)).save(tmp_path / "a_square.jpg")
    _picture(square, ink="white").save(tmp_path / "c_blank.png")
    (tmp_path / "d_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")
    (tmp_path / "e_empty.png").write_bytes(b"")  # named as a picture: reported, not passed over
    (tmp_path / "notes.txt").write_text("my doodles")
    with pytest.warns(SheepWarning, match="skipped 3 blank or unreadable picture.*e_empty.png"):
        d = data.load_drawings(tmp_path)
    assert d.format == "picture" and d.images.shape == (2, 28, 28) and d.skipped == 3
    assert d.meta["files"] == ["a_square.jpg", "b_square.png"]
    assert all(d.splits[k].tolist() == [0, 1] for k in formats.SPLITS)
    r = CliRunner().invoke(main, ["info", str(tmp_path), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["files"] == ["a_square.jpg", "b_square.png"], r.output
    assert "warning: " in r.stderr and "skipped 3 blank or unreadable pictures" in r.stderr
    unread = tmp_path / "unread"
    unread.mkdir()
    for name in ("c_blank.png", "d_broken.png", "e_empty.png"):
        (unread / name).write_bytes((tmp_path / name).read_bytes())
    r = CliRunner().invoke(main, ["info", str(unread)])  # none readable: why the first is not
    assert r.exit_code == 2 and "holds no readable drawing (3 pictures, all blank or unreadable; " in r.output
    assert "the first, c_blank.png: shows no drawing" in r.output, r.output
    from PIL import Image

    tall = [np.array([[0, 0], [20, 0], [20, 60], [0, 60], [0, 0]], float)]  # not the same turned
    stored = _picture(tall, size=(300, 400)).rotate(90, expand=True)  # as a phone stores a photo
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    stored.save(tmp_path / "phone.jpg", exif=exif)
    upright = data.load_drawings(tmp_path / "phone.jpg").images[0].astype(float)
    assert np.corrcoef(upright.ravel(), render(tall).ravel().astype(float))[0, 1] > 0.9
    one = data.load_drawings(tmp_path / "b_square.png")
    assert one.images.shape == (1, 28, 28) and np.array_equal(one.images[0], d.images[1])
    with pytest.raises(data.DataError, match="c_blank.png: shows no drawing"):
        data.load_drawings(tmp_path / "c_blank.png")
    with pytest.raises(data.DataError, match="d_broken.png: cannot be read as a picture"):
        data.load_drawings(tmp_path / "d_broken.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="is a folder without pictures"):
        data.load_drawings(tmp_path / "empty")


def test_phone_formats_avif_and_heic(tmp_path, monkeypatch):
    """AVIF is read as the other pictures are; a HEIC photo (an iPhone's) is found in a folder and,
    without pillow-heif to read it, named with what to do, not passed over."""
    from PIL import features

    from electric_sheep.errors import SheepWarning

    square = [np.array([[0, 0], [50, 0], [50, 50], [0, 50], [0, 0]], float)]
    _picture(square).save(tmp_path / "a.png")
    heic = tmp_path / "b.heic"  # an ISO media file's start with the HEIC brand
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    monkeypatch.setattr(formats, "_heif_opener", lambda: False)  # as where pillow-heif is not installed
    with pytest.warns(SheepWarning, match="skipped 1 blank or unreadable picture: b.heic"):
        assert len(data.load_drawings(tmp_path).images) == 1
    with pytest.raises(data.DataError, match="b.heic: cannot be read as a picture .a HEIC photo: reading it needs"):
        data.load_drawings(heic)
    if features.check("avif"):
        _picture(square).save(tmp_path / "c.avif", quality=90)
        png, avif = (data.load_drawings(tmp_path / f).images[0].astype(float) for f in ("a.png", "c.avif"))
        assert np.corrcoef(png.ravel(), avif.ravel())[0, 1] > 0.95


def test_pictures_in_folders_inside_the_folder_are_named_not_read(tmp_path):
    """Only the pictures directly in a folder are its drawings; those further down are named in a
    warning (they had been left out without a word)."""
    from electric_sheep.errors import SheepWarning

    square = [np.array([[0, 0], [50, 0], [50, 50], [0, 50], [0, 0]], float)]
    _picture(square).save(tmp_path / "top.png")
    for folder in ("farm/2025", "zoo", ".thumbnails", "notes"):
        (tmp_path / folder).mkdir(parents=True)
    _picture(square).save(tmp_path / "farm" / "2025" / "sheep.png")
    _picture(square).save(tmp_path / "zoo" / "goat.jpg")
    _picture(square).save(tmp_path / ".thumbnails" / "top.png")
    (tmp_path / "notes" / "todo.txt").write_text("draw more")
    with pytest.warns(SheepWarning, match=r"pictures in 2 folders inside it are not read \(farm, zoo\)"):
        d = data.load_drawings(tmp_path)
    assert d.meta["files"] == ["top.png"] and len(d.images) == 1


def test_long_rasterising_shows_progress(tmp_path, monkeypatch, capsys):
    """A big stroke file or folder of pictures shows a progress bar (after PROGRESS_AFTER_S; here 0)."""
    monkeypatch.setattr(strokes, "PROGRESS_AFTER_S", 0.0)
    data.load_drawings(write_ndjson(tmp_path / "s.ndjson", n=5), use_cache=False)
    data.load_drawings(write_sketchrnn(tmp_path / "s.npz"), use_cache=False)
    err = capsys.readouterr().err
    assert "rasterising" in err and "rasterising train" in err and "drawing" in err


def test_info_of_several_files_or_a_pattern(tmp_path):
    for name, n in (("a.npy", 20), ("b.npy", 30)):
        write_bitmap(tmp_path / name, n=n)
    r = CliRunner().invoke(main, ["info", str(tmp_path / "*.npy"), "--json"])
    assert r.exit_code == 0, r.output
    assert [s["count"] for s in json.loads(r.output)] == [20, 30]
    r = CliRunner().invoke(main, ["info", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    assert r.exit_code == 0 and r.output.count("drawings: ") == 2, r.output
    r = CliRunner().invoke(main, ["info", str(tmp_path / "c*.npy")])
    assert r.exit_code == 2 and "matches no file" in r.output


def test_a_pattern_given_to_a_one_file_command_is_named_as_one(tmp_path):
    for name in ("a.npy", "b.npy"):
        write_bitmap(tmp_path / name, n=20)
    for pattern, problem in (
        ("*.npy", "is a pattern (2 files match); this command reads one file"),
        ("c*.npy", "matches no file"),
    ):
        r = CliRunner().invoke(main, ["show", str(tmp_path / pattern), "-o", str(tmp_path / "grid.png")])
        assert r.exit_code == 2 and f"{tmp_path / pattern}: {problem}" in r.output, r.output
    assert not (tmp_path / "grid.png").exists()


def test_all_means_every_drawing_and_recognized_only_the_recognised(tmp_path):
    """`--all` is the default (every drawing), not the library's recognized=False (only those the
    game did not recognise)."""
    path = write_ndjson(tmp_path / "s.ndjson", n=10)  # every other drawing recognised
    counts = {}
    for flag in ([], ["--all"], ["--recognized"]):
        r = CliRunner().invoke(main, ["info", str(path), "--json", *flag])
        assert r.exit_code == 0, r.output
        counts[" ".join(flag)] = json.loads(r.output)["count"]
    assert counts == {"": 10, "--all": 10, "--recognized": 5}
    bitmap = write_bitmap(tmp_path / "b.npy", n=10)  # says nothing of recognition: said, not ignored
    r = CliRunner().invoke(main, ["info", str(bitmap), "--json", "--recognized"])
    assert json.loads(r.stdout)["count"] == 10 and "does not say which drawings the game recognised" in r.stderr
