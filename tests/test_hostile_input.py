"""Hostile and odd input: no data file runs code, no traceback, nothing at an output path is
replaced but a regular file, memory stays bounded."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_bin, write_bitmap, write_ndjson, write_sketchrnn
from PIL import Image

from electric_sheep.cli import main
from electric_sheep.data import drawings as data
from electric_sheep.data import formats, npz, strokes
from electric_sheep.data.npz import read_npz
from electric_sheep.errors import DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Payload:
    """What an attacker pickles: unpickling it calls ``open(marker, "w")``, creating the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil_npz(path: Path, marker: Path, where: str) -> Path:
    """A sketch-rnn-shaped .npz whose ``train`` array would run code when unpickled: the payload
    in place of a drawing, or as the array itself."""
    drawings = [np.zeros((3, 3), np.int16), _Payload(marker)] if where == "element" else [_Payload(marker)]
    parts = {name: np.array(drawings + [None], dtype=object)[:-1] for name in ("train", "valid", "test")}
    with open(path, "wb") as f:
        np.savez(f, **parts)
    return path


def _one_line(result, *needles: str) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


@pytest.mark.parametrize("where", ["element", "array"])
def test_a_pickled_payload_in_an_npz_never_runs(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = _evil_npz(tmp_path / "evil.npz", marker, where)
    sheep = write_bitmap(tmp_path / "sheep.npy", n=40)
    commands = [
        ["info", str(evil)],
        ["show", str(evil), "-o", str(tmp_path / "grid.png")],
        ["train", str(evil), "--epochs", "1", "--out", str(tmp_path / "run")],
        ["anomalies", str(sheep), "--mix", f"{evil}:0.1", "--out-dir", str(tmp_path / "out")],
    ]
    for args in commands:
        result = CliRunner().invoke(main, args)
        _one_line(result, str(evil), "would need pickle to read (the callable io.open)", "refused")
    with pytest.raises(DataError, match="would need pickle"):
        formats.check_file(evil)  # what `sheep download` checks a fetched file with
    assert not marker.exists()
    assert not (tmp_path / "grid.png").exists()


def test_npz_reader_matches_numpy_on_real_and_written_files(tmp_path, shared):
    written = write_sketchrnn(tmp_path / "squares.npz")
    for path in (written, shared / "aaron_sheep.npz"):
        ours = read_npz(path)
        with np.load(path, allow_pickle=True, encoding="latin1") as theirs:
            assert set(ours) == set(theirs.files)
            for name in ours:
                assert len(ours[name]) == len(theirs[name])
                for a, b in zip(ours[name], theirs[name], strict=True):
                    assert a.dtype == b.dtype and np.array_equal(a, b)


def test_numeric_npz_members_and_damaged_archives(tmp_path):
    plain = tmp_path / "plain.npz"
    with open(plain, "wb") as f:
        np.savez(f, train=np.arange(12, dtype=np.int16).reshape(4, 3))
    assert np.array_equal(read_npz(plain)["train"], np.arange(12).reshape(4, 3))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(plain.read_bytes()[:60])
    with pytest.raises(DataError, match="corrupt .npz"):
        read_npz(broken)


def test_an_archive_that_unpacks_to_too_much_is_refused_unread(tmp_path, monkeypatch):
    """A few MB of compressed zeros can unpack to any size: the sizes the archive states are added
    up over the splits read, and a file over the limit is refused before any is unpacked."""
    monkeypatch.setattr(npz, "MAX_UNPACKED_BYTES", 1_000_000)
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, train=np.zeros(600_000, np.uint8), valid=np.zeros(600_000, np.uint8))  # each alone fits
    monkeypatch.setattr(npz, "_read_member", lambda *a: pytest.fail("a member was unpacked"))
    res = CliRunner().invoke(main, ["show", str(bomb)])
    _one_line(res, str(bomb), "unpacks to 1.2 MB, over the limit of 1.0 MB; refused unread")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_a_broken_second_chunk(path: Path) -> Path:
    """A 28x28 grey PNG whose pixels continue in a second IDAT chunk with a damaged type: Pillow
    raises a SyntaxError for it, not the OSError of other damage."""
    pixels = np.full((28, 28), 255, np.uint8)
    pixels[4:24, 8:20] = 0
    stream = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in pixels))  # filter 0 per row
    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", stream[:10]), (b"\x00\x00AT", stream[10:]), (b"IEND", b"")]
    path.write_bytes(PNG_MAGIC + b"".join(_png_chunk(kind, data) for kind, data in chunks))
    return path


def test_damaged_pictures_and_compressed_archives_are_one_line(tmp_path):
    png = _png_with_a_broken_second_chunk(tmp_path / "broken.png")
    _one_line(CliRunner().invoke(main, ["show", str(png)]), str(png), "cannot be read as a picture")
    archive = tmp_path / "sketches.npz"
    np.savez_compressed(archive, train=np.arange(4000, dtype=np.int16))
    raw = bytearray(archive.read_bytes())
    raw[100:140] = bytes(b ^ 0xFF for b in raw[100:140])  # inside the deflated member
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt .npz"):
        read_npz(archive)


def _mutated(raw: bytes, rng: np.random.Generator) -> bytes:
    """``raw`` damaged one of the ways a download or a disk damages files."""
    data = bytearray(raw)
    at = int(rng.integers(len(data)))
    how = rng.integers(4)
    if how == 0:  # cut short
        return bytes(data[:at])
    if how == 1:  # bits flipped, most often in the first bytes, where the headers are
        span = min(len(data), 256) if rng.random() < 0.7 else len(data)
        for i in rng.integers(span, size=int(rng.integers(1, 9))):
            data[i] ^= 1 << int(rng.integers(8))
        return bytes(data)
    if how == 2:  # a run of zeros
        end = min(len(data), at + int(rng.integers(1, 200)))
        data[at:end] = bytes(end - at)
        return bytes(data)
    return bytes(data[:at] + rng.integers(0, 256, int(rng.integers(1, 50)), np.uint8).tobytes() + data[at:])


def _compressed_npz(path: Path) -> Path:
    np.savez_compressed(path, train=np.arange(3000, dtype=np.int16).reshape(1000, 3))
    return path


def _png(path: Path) -> Path:
    pixels = np.full((56, 56), 255, np.uint8)
    pixels[10:46, 20] = pixels[28, 8:50] = 0
    Image.fromarray(pixels).save(path)
    return path


GOOD_FILES = {
    "npy": (write_bitmap, "good.npy"),
    "ndjson": (write_ndjson, "good.ndjson"),
    "bin": (write_bin, "good.bin"),
    "sketchrnn": (write_sketchrnn, "good.npz"),
    "compressed npz": (_compressed_npz, "good.npz"),
    "png": (_png, "good.png"),
}


@pytest.mark.parametrize("kind", GOOD_FILES)
def test_damaged_files_are_read_or_refused_in_one_line(tmp_path, kind):
    """Seeded damage of every format: each file is read (exit 0) or refused in one line naming it
    (exit 2), never a traceback."""
    make, name = GOOD_FILES[kind]
    good = make(tmp_path / name)
    rng = np.random.default_rng(0)
    for i in range(40):
        damaged = tmp_path / f"damaged{i}{good.suffix}"
        damaged.write_bytes(_mutated(good.read_bytes(), rng))
        result = CliRunner().invoke(main, ["info", str(damaged)])
        lines = result.output.strip().splitlines()
        assert result.exception is None or isinstance(result.exception, SystemExit), (damaged, result.exception)
        assert result.exit_code == 0 or (result.exit_code == 2 and len(lines) == 1 and damaged.name in lines[0]), (
            damaged,
            result.output,
        )


def test_object_dtype_npy_says_so(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    _one_line(CliRunner().invoke(main, ["info", str(path)]), str(path), "dtype object", "refused")


def test_odd_ndjson_lines_are_skipped_and_counted(tmp_path):
    path = write_ndjson(tmp_path / "odd.ndjson", n=4)
    huge = '{"word": "sheep", "drawing": [[[1' + "0" * 400 + ", 5], [1, 9]]]}"
    deep = "[" * 100_000 + "]" * 100_000
    a_dict = '{"word": "sheep", "drawing": [{"x": [1, 2], "y": [3, 4]}]}'
    nested = '{"word": "sheep", "drawing": [[[[], []], [[], []]]]}'
    with open(path, "a") as f:
        f.write("\n".join([huge, deep, a_dict, nested]) + "\n")
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "skipped 4 malformed" in result.output and "drawings: 4" in result.output


def test_a_line_too_long_to_be_a_drawing_is_skipped_unread(tmp_path, monkeypatch):
    """A valid drawing in a line over MAX_LINE_BYTES is skipped: one line of a hostile file must not
    take all the memory (parsing JSON numbers takes some 20 times their bytes)."""
    monkeypatch.setattr(strokes, "MAX_LINE_BYTES", 1000)
    path = write_ndjson(tmp_path / "long.ndjson", n=3)
    xs, ys = ", ".join(str(i % 50) for i in range(300)), ", ".join(str(i % 40) for i in range(300))
    with open(path, "a") as f:
        f.write('{"word": "sheep", "drawing": [[[' + xs + "], [" + ys + "]]]}\n")
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "skipped 1 malformed" in result.output and "drawings: 3" in result.output
    # the same in a Kaggle CSV: a long row skipped; a header row past the limit (a million columns) refused
    header = "countrycode,drawing,key_id,recognized,timestamp,word\n"
    good = 'GB,"[[[0, 50, 50], [0, 0, 50]]]",1,True,t,sheep\n'
    long_row = 'GB,"[[[' + xs + "], [" + ys + ']]]",2,True,t,sheep\n'
    (tmp_path / "long.csv").write_text(header + good + long_row + good)
    result = CliRunner().invoke(main, ["info", str(tmp_path / "long.csv")])
    assert result.exit_code == 0 and "skipped 1 malformed" in result.output and "drawings: 2" in result.output
    (tmp_path / "wide.csv").write_text(header.strip() + "," * 2000 + "\n" + good)
    result = CliRunner().invoke(main, ["info", str(tmp_path / "wide.csv")])
    _one_line(result, "wide.csv", "its first row names no 'drawing' column within 1,000 bytes")


def test_a_missing_split_is_one_line(tmp_path):
    path = tmp_path / "valid_only.npz"
    square = np.array([[0, 0, 0], [20, 0, 0], [0, 20, 0], [-20, 0, 1]], dtype=np.int16)
    with open(path, "wb") as f:
        np.savez(f, valid=np.array([square, square[:3], None], dtype=object)[:-1])
    result = CliRunner().invoke(main, ["train", str(path), "--epochs", "1", "--out", str(tmp_path / "run")])
    _one_line(result, str(path), "no split 'train'")


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (["draw", "-o", "x.xyz"], "cannot write a picture as .xyz"),
        (["show", "DATA", "-o", "x.xyz"], "cannot write a picture as .xyz"),
        (["manifold", "-o", "x.xyz"], "cannot write a figure as .xyz"),
        (["dream", "-o", "x.jpg"], "cannot write an animation as .jpg"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_unknown_picture_suffix_is_one_line(tmp_path, command, needle):
    sheep = write_bitmap(tmp_path / "sheep.npy", n=20)
    args = [str(sheep) if a == "DATA" else str(tmp_path / a) if "." in a else a for a in command]
    _one_line(CliRunner().invoke(main, args), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheep.npy"]


def test_dream_writes_the_format_its_name_asks_for(tmp_path):
    for name, fmt in [("d.png", "PNG"), ("d.gif", "GIF"), ("d.webp", "WEBP")]:
        out = tmp_path / name
        result = CliRunner().invoke(main, ["dream", "-n", "1", "--frames", "3", "-o", str(out)])
        assert result.exit_code == 0, result.output
        with Image.open(out) as img:
            assert img.format == fmt and img.n_frames == 3


def test_output_through_a_symlink_replaces_its_target_not_the_link(tmp_path):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    result = CliRunner().invoke(main, ["draw", "-n", "4", "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "real.png"]


def test_links_planted_in_a_shared_run_folder_are_never_written_through(tmp_path):
    """A run folder from someone else may hold symbolic links where commands write (the scores
    CSV, the lock, the columns streamed to disk): none is written through, whatever it names; each
    stops the command in one line (the lock's is replaced), and without them the command runs."""
    import shutil

    from electric_sheep.runs.checkpoint import builtin_run_dir

    data = write_bitmap(tmp_path / "sheep.npy", n=600)  # over 500: scored as a file, its columns streamed
    run, out = tmp_path / "shared_run", tmp_path / "shared_run" / "analysis"
    shutil.copytree(builtin_run_dir(), run)
    out.mkdir()
    victims = []

    def plant(link: Path) -> None:
        victims.append(tmp_path / f"precious{len(victims)}")
        victims[-1].write_text("mine")
        link.unlink(missing_ok=True)
        link.symlink_to(victims[-1])

    plant(out / "anomaly_scores.csv")
    plant(out / ".lock")
    result = CliRunner().invoke(main, ["anomalies", str(run), str(data), "--json"])  # --json: no bars
    _one_line(result, f"{out / 'anomaly_scores.csv'}: is a symbolic link, which is never written through")
    parts = [p for p in out.rglob("*") if p.is_file() and not p.is_symlink() and p.parent != out]
    assert parts and not (out / ".lock").is_symlink()  # the columns computed so far are kept
    for part in parts:
        plant(part)
    for _ in range(len(victims)):  # each run stops at a link; the user removes it and runs again
        result = CliRunner().invoke(main, ["anomalies", str(run), str(data), "--json"])  # --json: no bars
        assert [v.read_text() for v in victims] == ["mine"] * len(victims)
        if result.exit_code == 0:
            break
        Path(_one_line(result, "is a symbolic link").split(": ")[1]).unlink()
    assert result.exit_code == 0, result.output
    assert not any(p.is_symlink() for p in out.rglob("*")) and (out / "anomaly_scores.csv").stat().st_size > 0


def test_a_shared_run_folder_cannot_copy_the_users_files_into_a_report(tmp_path):
    """The report inlines the figures `sheep anomalies` left in the run folder. Someone else's
    run folder may put a link there to any file the user can read (a private key), or another file
    in the figure's place: neither is copied into the page, which is made to be shared."""
    import shutil

    from electric_sheep.runs.checkpoint import builtin_run_dir

    run, page = tmp_path / "shared_run", tmp_path / "report.html"
    shutil.copytree(builtin_run_dir(), run)
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    assert CliRunner().invoke(main, ["anomalies", str(run), str(data), "--json"]).exit_code == 0
    figure, secret = run / "analysis" / "anomaly_scores.png", tmp_path / "id_ed25519"
    secret.write_bytes(PNG_MAGIC[:4] + b"-----BEGIN OPENSSH PRIVATE KEY-----")
    figure.unlink()
    figure.symlink_to(secret)
    result = CliRunner().invoke(main, ["report", str(run), str(data), "-o", str(page), "--json"])  # --json: no bars
    _one_line(result, f"{figure}: is a symbolic link, never copied into a page: remove it and run `sheep anomalies`")
    figure.unlink()
    shutil.copy(secret, figure)  # a file in the figure's place that is not a picture we drew
    result = CliRunner().invoke(main, ["report", str(run), str(data), "-o", str(page), "--json"])  # --json: no bars
    _one_line(result, f"{figure}: is not a PNG figure electric-sheep wrote: run `sheep anomalies` again")
    assert not page.exists()


def test_text_far_larger_than_a_run_writes_is_refused_unread(tmp_path):
    """A sparse file costs no disk at any size; read whole, a config.json of a gigabyte would
    cost gigabytes of memory. Refused after the first 64 MiB, in one line."""
    import shutil

    from electric_sheep.runs.checkpoint import builtin_run_dir
    from electric_sheep.runs.fileio import MAX_TEXT_CHARS

    run = tmp_path / "shared_run"
    shutil.copytree(builtin_run_dir(), run)
    os.truncate(run / "config.json", 2**30)
    result = CliRunner().invoke(main, ["draw", str(run), "-o", str(tmp_path / "x.png")])
    _one_line(result, f"{run / 'config.json'}: holds over {MAX_TEXT_CHARS // 2**20} MiB of text")


def test_pipes_planted_where_a_command_keeps_its_work_never_make_it_wait(tmp_path):
    """A named pipe (anyone may make one) in a shared run folder where `sheep anomalies` keeps its
    streamed columns and their records would block the command forever, reading or writing it.
    Such a pipe is removed and the column computed again; one where a command reads the run's
    own arrays is named in one line."""
    import shutil

    from electric_sheep.runs.checkpoint import builtin_run_dir

    data = write_bitmap(tmp_path / "sheep.npy", n=600)  # over 500: scored as a file, its columns streamed
    run, out = tmp_path / "shared_run", tmp_path / "shared_run" / "analysis"
    shutil.copytree(builtin_run_dir(), run)
    out.mkdir()
    (out / "anomaly_scores.csv").symlink_to(tmp_path / "elsewhere")  # stops the run once its columns are made
    CliRunner().invoke(main, ["anomalies", str(run), str(data), "--json"])
    (out / "anomaly_scores.csv").unlink()
    parts = [p for p in out.rglob("*") if p.is_file() and p.parent != out]
    stems = {p.name.split(".partial")[0] for p in parts}
    assert parts and stems
    pipes = set(parts) | {p.parent / f"{stem}.job.json" for p in parts for stem in stems}
    for pipe in pipes:
        pipe.unlink(missing_ok=True)
        os.mkfifo(pipe)
    cmd = [sys.executable, "-m", "electric_sheep", "anomalies", str(run), str(data), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # a few seconds; a pipe waited on blocks
    assert done.returncode == 0, done.stderr
    assert not any(stat.S_ISFIFO(p.lstat().st_mode) for p in out.rglob("*"))
    assert (out / "anomaly_scores.csv").stat().st_size > 0
    codes = run / "latents" / "epoch_001.npy"  # what the report reads: named in one line, not waited on
    codes.unlink()
    os.mkfifo(codes)
    cmd = [sys.executable, "-m", "electric_sheep", "report", str(run), "-o", str(tmp_path / "r.html"), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().endswith(f"{codes}: is not a regular file"), done.stderr


def test_names_cannot_drive_the_terminal(tmp_path):
    """A file named with a terminal's escape sequences (clear the screen, set the title, reverse the
    text's direction) is printed with them shown as escapes, in errors and in results alike."""
    bad = tmp_path / "bad\x1b[2J\x1b]0;title\x07\u202e.npy"
    bad.write_bytes(b"x")
    result = CliRunner().invoke(main, ["info", str(bad)], color=True)  # colour on: nothing stripped
    line = _one_line(result, "bad\\x1b[2J\\x1b]0;title\\x07\\u202e.npy: unrecognised format")
    assert not any(c in line for c in "\x1b\x07\u202e"), line
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.new("L", (56, 56), 255).save(folder / "plain.png")
    drawn = Image.new("L", (56, 56), 255)
    drawn.paste(0, (10, 10, 40, 20))
    drawn.save(folder / "\x1b[31mred.png")
    result = CliRunner().invoke(main, ["info", str(folder)], color=True)
    assert result.exit_code == 0 and "\\x1b[31mred.png" in result.output and "\x1b" not in result.output


def test_a_link_is_streamed_into_only_when_it_names_a_terminal_or_a_pipe(tmp_path):
    from electric_sheep.runs.fileio import user_output, write_text

    (tmp_path / "mine.txt").write_text("mine")
    (tmp_path / "link.txt").symlink_to(tmp_path / "mine.txt")
    with pytest.raises(DataError, match="link.txt: is a symbolic link"):
        write_text(tmp_path / "link.txt", "theirs")
    assert (tmp_path / "mine.txt").read_text() == "mine"
    assert user_output(tmp_path / "link.txt") == tmp_path / "mine.txt"  # what -o does with a link
    (tmp_path / "new.txt").symlink_to(tmp_path / "not_yet.txt")
    assert user_output(tmp_path / "new.txt") == tmp_path / "not_yet.txt"
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to_pipe").symlink_to(tmp_path / "pipe")
    received = []
    reader = threading.Thread(target=lambda: received.append((tmp_path / "pipe").read_text()))
    reader.start()
    assert user_output(tmp_path / "to_pipe") == tmp_path / "to_pipe"
    write_text(tmp_path / "to_pipe", "streamed")
    reader.join(timeout=60)
    assert received == ["streamed"] and (tmp_path / "to_pipe").is_symlink()


def test_output_into_a_fifo_streams_and_keeps_the_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = CliRunner().invoke(main, ["draw", "-n", "4", "-o", str(fifo)])
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and received[0].startswith(PNG_MAGIC)


def test_dev_stdout_gets_the_picture_and_dev_full_is_left_alone(tmp_path):
    cmd = [sys.executable, "-m", "electric_sheep", "draw", "-n", "4", "-o", "/dev/stdout"]
    proc = subprocess.run(cmd, capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(PNG_MAGIC) and b"wrote /dev/stdout" in proc.stderr
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    proc = subprocess.run([*cmd[:-1], "/dev/full"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "/dev/full: cannot be written" in proc.stderr, proc.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_huge_grids_are_refused_before_any_work(tmp_path):
    for args in (["draw", "-n", "100000000"], ["dream", "-n", "1000"], ["manifold", "--grid", "10000"]):
        result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "x.png")])
        assert result.exit_code == 2 and "is not in the range" in result.output, result.output
    from electric_sheep.render.plots import MAX_TILES, grid_image

    with pytest.raises(Exception, match="over the limit"):
        grid_image(np.zeros((MAX_TILES + 1, 28, 28), np.uint8))


def test_a_program_dressed_as_a_picture_is_never_handed_to_an_interpreter(tmp_path, monkeypatch):
    """Pillow reads PostScript by running Ghostscript on it: a file named like a picture that holds
    PostScript is refused in one line without that reader (or any but the picture kinds) being tried."""
    from PIL import EpsImagePlugin

    tried = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: tried.append(self) or 1 / 0)
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n0 0 moveto 9 9 lineto stroke\n")
    result = CliRunner().invoke(main, ["info", str(folder)])
    _one_line(result, "x.png: cannot be read as a picture (cannot identify image file")
    assert tried == []


def test_pictures_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_PICTURE_PIXELS", 1_000_000)  # the same rule, on pictures quick to make
    img = Image.new("L", (1600, 1200), 255)
    img.paste(0, (400, 300, 1200, 900))
    img.save(tmp_path / "big.png")
    result = CliRunner().invoke(main, ["info", str(tmp_path / "big.png")])
    _one_line(result, "big.png", "1600 x 1200 pixels is over the limit")
    img.save(tmp_path / "big.jpg", quality=95)  # a JPEG is decoded at a reduced scale instead
    with Image.open(tmp_path / "big.jpg") as picture:
        formats._reduce_on_decode(picture)
        assert picture.size == (800, 600)
    assert len(data.load_drawings(tmp_path / "big.jpg")) == 1


def test_skipped_pictures_are_named(tmp_path):
    folder = tmp_path / "doodles"
    folder.mkdir()
    ink = Image.new("L", (64, 64), 255)
    ink.paste(0, (10, 10, 50, 14))
    ink.save(folder / "a.png")
    Image.new("L", (64, 64), 255).save(folder / "blank.png")
    result = CliRunner().invoke(main, ["info", str(folder)])
    assert result.exit_code == 0 and "skipped 1 blank or unreadable picture: blank.png" in result.output


def test_errors_about_the_builtin_model_do_not_show_the_package_folder(tmp_path):
    from electric_sheep.runs.checkpoint import builtin_run_dir

    result = CliRunner().invoke(main, ["clusters", "--out-dir", str(tmp_path)])
    line = _one_line(result, "the built-in model", "give DATA")
    assert str(builtin_run_dir()) not in line


def test_ctrl_c_during_train_on_mix_exits_130(tmp_path, monkeypatch):
    import electric_sheep.runs.mixtures as mixtures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mixtures, "train_on_mixture", interrupted)
    sheep = write_bitmap(tmp_path / "sheep.npy", n=40)
    other = write_bitmap(tmp_path / "other.npy", n=10, seed=1)
    out = tmp_path / "out"
    args = ["anomalies", str(sheep), "--mix", f"{other}:0.1", "--train-on-mix", "1", "--out-dir", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130 and "stopped by Ctrl-C" in result.output, result.output
    # nothing but the mixture's training so far, which the same command continues
    left = [p.relative_to(out).as_posix() for p in sorted(out.rglob("*")) if p.name != ".lock"]
    assert left == [mixtures.PARTIAL, f"{mixtures.PARTIAL}/job.json"]


def test_what_the_tour_writes_is_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    written = ["sheep.png", "grid.png", "dream.gif", "report.html", "explorer.html", "runs/aaron/config.json"]
    written += ["sheep-analysis/eval.json"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=root, capture_output=True, text=True)
    assert sorted(proc.stdout.split()) == sorted(written)


def test_json_files_stay_strict_json(tmp_path):
    """NaN and infinity are not JSON: a number that is not defined is written as null."""
    from electric_sheep.runs.fileio import write_json

    write_json(tmp_path / "r.json", {"silhouette": float("nan"), "n": [1.5, float("inf")]})
    written = json.loads((tmp_path / "r.json").read_text(), parse_constant=_refuse)
    assert written == {"silhouette": None, "n": [1.5, None]}


def _refuse(name: str):
    raise AssertionError(f"{name} in a JSON file")
