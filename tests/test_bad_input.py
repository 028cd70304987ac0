"""Every bad input gives one line naming the file and the problem, exit status 2, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_bitmap, write_ndjson
from PIL import Image

from electric_sheep.cli import main
from electric_sheep.data.drawings import cached_category_path
from electric_sheep.runs.checkpoint import builtin_run_dir


def _html(p):
    p.write_text("<!DOCTYPE html>\n<html><head><title>sheep.npy · GitHub</title></head><body></body></html>")


def _lfs(p):
    p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 132640\n")


def _truncated(p):
    write_bitmap(p, n=100)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])


def _rows(p):
    np.save(p, np.zeros((10, 100), dtype=np.uint8))


def _dtype(p):
    np.save(p, np.zeros((10, 784), dtype=np.float64))


def _booleans(p):
    np.save(p, np.zeros((10, 784), dtype=bool))


def _integers(p):
    np.save(p, np.zeros((10, 784), dtype=np.int64))


def _bitmaps_in_npz(p):
    """A .npz with sketch-rnn's keys holding 28x28 bitmaps: read as strokes, it drew nonsense."""
    with open(p, "wb") as f:
        np.savez(f, **{k: np.zeros((10, 28, 28), np.uint8) for k in ("train", "valid", "test")})


def _npz_without_splits(p):
    with open(p, "wb") as f:
        np.savez(f, x_train=np.zeros((10, 28, 28), np.uint8), y_train=np.zeros(10))


def _svg(p):
    p.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><path d="M1 1 L9 9"/></svg>')


def _empty(p):
    p.write_bytes(b"")


def _garbage(p):
    p.write_bytes(b"\x00\x01\x02 this is not a drawing file")


def _no_rows(p):
    np.save(p, np.zeros((0, 784), dtype=np.uint8))


def _bad_header(p):
    """A header whose dict is cut short: numpy's tokenizer, not its parser, fails on it."""
    write_bitmap(p, n=10)
    raw = bytearray(p.read_bytes())
    raw[raw.index(b"}") + 2] = ord("(")
    p.write_bytes(bytes(raw))


CASES = [
    (_html, "HTML page"),
    (_lfs, "Git LFS pointer"),
    (_truncated, "truncated"),
    (_rows, "expected (N, 784)"),
    (_dtype, "dtype is float64, expected uint8 (0 = background, 255 = ink); save floats in [0, 1] as (x * 255)"),
    (_booleans, "dtype is bool, expected uint8 (0 = background, 255 = ink); save booleans (True = ink) as"),
    (_integers, "dtype is int64, expected uint8 (0 = background, 255 = ink); save integers 0-255 as x.astype"),
    (
        _bitmaps_in_npz,
        "split 'train' is not stroke-3 data (a drawing of shape (28, 28), not (points, 3)); 28x28 bitmaps go in",
    ),
    (_npz_without_splits, "sketch-rnn's keys train/valid/test (has x_train, y_train); 28x28 bitmaps go in a .npy"),
    (_svg, "is an SVG drawing: vector pictures are not read; export it as PNG first"),
    (_empty, "is empty"),
    (_garbage, "unrecognised format"),
    (_no_rows, "holds no drawings"),
    (_bad_header, "is not a readable .npy file"),
]


@pytest.mark.parametrize(("make", "problem"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
@pytest.mark.parametrize("command", ["info", "show"])
def test_bad_file_one_line_exit_2(tmp_path, make, problem, command):
    path = tmp_path / "sheep.npy"
    make(path)
    out = tmp_path / "grid.png"
    args = [command, str(path)] + (["-o", str(out)] if command == "show" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and problem in lines[0], lines
    assert not out.exists()


def test_a_bitmap_saved_dark_on_light_is_pointed_out(tmp_path, shared):
    """Drawings saved with 255 = paper read as black squares: a warning says so and how to fix it,
    and the command still runs; real Quick, Draw! bitmaps are not warned about."""
    real = np.load(shared / "quickdraw/bitmap/sheep.npy", mmap_mode="r")[:50]
    for name, pixels, warned in [("real.npy", real, False), ("inverted.npy", 255 - real, True)]:
        path = tmp_path / name
        np.save(path, pixels)
        r = CliRunner().invoke(main, ["show", str(path), "-n", "4", "-o", str(tmp_path / f"{name}.png")])
        assert r.exit_code == 0, r.output
        warning = f"warning: {path}: most pixels are ink"
        assert (warning in r.output) is warned, r.output
        assert ("save 255 - x" in r.output) is warned


def test_missing_file_and_unknown_category(tmp_path):
    r = CliRunner().invoke(main, ["info", str(tmp_path / "nope.npy")])
    assert r.exit_code == 2 and "nope.npy: no such file" in r.output
    r = CliRunner().invoke(main, ["info", "sheeep"])
    assert r.exit_code == 2 and "did you mean 'sheep'" in r.output
    r = CliRunner().invoke(main, ["download", "flying sheep", "--dir", str(tmp_path)])
    assert r.exit_code == 2 and "not a Quick, Draw! category" in r.output


def test_every_category_not_downloaded_is_named_at_once(tmp_path, monkeypatch):
    """Training on several categories, none downloaded: one line names them all and the one command
    that fetches them; a misspelt name among them is told first; nothing is written."""
    monkeypatch.setenv("ELECTRIC_SHEEP_CACHE", str(tmp_path / "cache"))
    bitmap = cached_category_path("cat", "bitmap", tmp_path / "cache")
    bitmap.parent.mkdir(parents=True)
    np.save(bitmap, np.zeros((10, 784), np.uint8))  # cat is there
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "sheep", "cat", "The Eiffel Tower", "sheep.npy", "--out", str(run)])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "sheep, The Eiffel Tower: not downloaded yet" in r.output
    assert "run `sheep download sheep 'The Eiffel Tower'`" in r.output and not run.exists()
    r = CliRunner().invoke(main, ["info", "sheep", "dgo"])
    assert r.exit_code == 2 and "dgo: not a Quick, Draw! category; did you mean" in r.output and "'dog'" in r.output
    pipe, dangling = tmp_path / "pipe", tmp_path / "gone.npy"
    os.mkfifo(pipe)  # reading it would wait for a writer forever
    dangling.symlink_to(tmp_path / "nothing.npy")
    for odd in (pipe, dangling):
        r = CliRunner().invoke(main, ["info", str(odd)])
        assert r.exit_code == 2 and "is not a file or folder of drawings" in r.output, r.output


def test_a_run_without_recorded_data_says_how_to_give_it(tmp_path):
    """The built-in model records no data: the message names the way each command takes DATA."""
    for args, how in [(["clusters"], "give DATA,"), (["reconstruct"], "give --data DATA,")]:
        r = CliRunner().invoke(main, [*args, "--out-dir", str(tmp_path)])
        assert r.exit_code == 2 and how in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert "sheep download NAME" in r.output and "Quick, Draw!" in r.output  # where such data comes from
        assert "or run `sheep download sheep` once and give nothing" in r.output
    from electric_sheep.runs.checkpoint import builtin_run_dir

    r = CliRunner().invoke(main, ["anomalies", str(builtin_run_dir())])  # a run folder, no drawings to score
    assert r.exit_code == 2 and "give DATA, a file or a category name" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    drawings = write_bitmap(tmp_path / "sheep.npy")  # drawings where RUN_DIR goes: what to pick from
    for command in (["reconstruct", "--index", "1", "0"], ["interpolate", "--from", "1", "--to", "0"]):
        given, flagged = (tmp_path / "given.png", tmp_path / "flagged.png")
        r = CliRunner().invoke(main, [*command, str(drawings), "-o", str(given)])
        assert r.exit_code == 0 and "wrote" in r.output, r.output
        r = CliRunner().invoke(main, [*command, "--data", str(drawings), "-o", str(flagged)])
        assert given.read_bytes() == flagged.read_bytes()
    r = CliRunner().invoke(main, ["draw", str(drawings), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "is a file, not a run folder" in r.output, r.output


def test_ndjson_malformed_line_warns_and_goes_on(tmp_path):
    path = write_ndjson(tmp_path / "s.ndjson", n=5, bad_lines=1)
    r = CliRunner().invoke(main, ["info", str(path)])
    assert r.exit_code == 0 and "skipped 1 malformed" in r.output and "drawings: 5" in r.output


def test_existing_output_survives_a_failed_command(tmp_path):
    out = tmp_path / "grid.png"
    out.write_bytes(b"precious")
    bad = tmp_path / "bad.npy"
    _html(bad)
    r = CliRunner().invoke(main, ["show", str(bad), "-o", str(out)])
    assert r.exit_code == 2 and out.read_bytes() == b"precious"


def test_real_process_prints_no_traceback(tmp_path):
    bad = tmp_path / "sheep.npy"
    _lfs(bad)
    proc = subprocess.run([sys.executable, "-m", "electric_sheep", "info", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and str(bad) in proc.stderr


def test_bad_mix_fraction_and_run_folder(tmp_path):
    sheep = write_bitmap(tmp_path / "sheep.npy", n=20)
    other = write_bitmap(tmp_path / "other.npy", n=5, seed=1)
    r = CliRunner().invoke(main, ["anomalies", str(sheep), "--mix", f"{other}:1.5", "--out-dir", str(tmp_path)])
    assert r.exit_code == 2 and "fraction must be in (0, 1]" in r.output
    r = CliRunner().invoke(
        main, ["anomalies", str(sheep), "--mix", f"{other}:0.1", "--train-on-mix", "1", "--trim", "1"]
    )
    assert r.exit_code == 2 and "--trim" in r.output
    r = CliRunner().invoke(main, ["anomalies", str(sheep), "--latent-dim", "4"])
    assert r.exit_code == 2 and "give --train-on-mix too" in r.output
    r = CliRunner().invoke(main, ["draw", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "not a run folder" in r.output and not (tmp_path / "x.png").exists()


def test_damaged_run_folder_names_the_file(tmp_path):
    """A hand-edited or half-copied run folder: exit 2, the file and problem named, nothing overwritten."""
    r = CliRunner()
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    run = tmp_path / "run"
    res = r.invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run)])
    assert res.exit_code == 0, res.output
    config, weights = (run / "config.json").read_text(), (run / "model.safetensors").read_bytes()

    def fails(args: list[str], path, problem: str) -> None:
        res = r.invoke(main, args)
        last = res.output.strip().splitlines()[-1]
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert str(path) in last and problem in last, last

    for text, problem in [
        ("[]", 'no "model" settings'),
        ('{"model": {"latnet_dim": 2}}', "unknown model option(s): latnet_dim"),
        ('{"model": {"latent_dim": "two"}}', "invalid model settings"),
    ]:
        (run / "config.json").write_text(text)
        fails(["draw", str(run), "-o", str(tmp_path / "x.png")], run / "config.json", problem)
    (run / "config.json").write_bytes(config.encode().replace(b"default", b"def\xbault"))
    fails(["draw", str(run), "-o", str(tmp_path / "x.png")], run / "config.json", "is not UTF-8 text")
    (run / "config.json").write_text(config)
    (run / "training_state.safetensors").write_bytes(b"not safetensors")
    resume = ["train", str(data), "--epochs", "2", "--out", str(run), "--resume"]
    fails(resume, run / "training_state.safetensors", "cannot be read as a training state")
    assert (run / "model.safetensors").read_bytes() == weights and (run / "config.json").read_text() == config
    report = ["report", str(run), "-o", str(tmp_path / "r.html")]
    metrics = (run / "metrics.jsonl").read_text()
    row = json.loads(metrics.splitlines()[0])
    for line, problem in [
        ('{"epoch": 2, "loss', "line 2 is not valid JSON"),
        ("[1, 2]", "line 2 is not an epoch's metrics"),
        (json.dumps({k: v for k, v in row.items() if k != "val_loss"}), "line 2 has no 'val_loss'"),
        (json.dumps({**row, "loss": "low"}), "line 2: 'loss' is not a number"),
        (json.dumps({**row, "kl_weight": None}), "line 2: 'kl_weight' is not a number"),
        (json.dumps({**row, "epoch": 1.5}), "line 2: 'epoch' is not a whole number from 1"),
    ]:
        (run / "metrics.jsonl").write_text(metrics + line + "\n")
        fails(report, run / "metrics.jsonl", problem)
    (run / "metrics.jsonl").write_text(metrics)
    latents = run / "latents" / "epoch_001.npy"
    codes = latents.read_bytes()
    latents.write_bytes(b"half a file")
    fails(["snapshots", str(run), "--out-dir", str(tmp_path)], latents, "not a readable .npy array")
    np.save(latents, np.zeros((4, 1), np.float32))  # codes of another model
    fails(report, latents, "holds codes of width 1, the run's latent has 16 dimensions")
    np.save(latents, np.full((4, 16), np.nan, np.float32))
    fails(report, latents, "non-finite numbers")
    with open(latents, "wb") as f:  # 2 GiB of codes listed, no disk used (sparse): refused from its header
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**25 + 1, 16)})
        os.truncate(latents, f.tell() + (2**25 + 1) * 16 * 4)
    fails(report, latents, "holds 33,554,433 codes, more than any run saves")
    latents.write_bytes(codes)
    (run / "analysis").mkdir()
    (run / "analysis" / "anomalies.json").write_text('{"score": "mse"}')
    fails(report, run / "analysis" / "anomaly_scores.png", "is missing")
    for name in ("anomaly_scores.png", "anomaly_gallery.png"):
        (run / "analysis" / name).write_bytes(b"")
    fails(report, run / "analysis" / "anomaly_scores.png", "is not a PNG figure electric-sheep wrote")
    for name in ("anomaly_scores.png", "anomaly_gallery.png"):
        Image.new("L", (4, 4)).save(run / "analysis" / name)
    fails(report, run / "analysis" / "anomalies.json", "is damaged")
    typed = {"score": "mse", "n_flagged": 1, "n": 40, "rule": "top 1", "auroc": "high", "n_planted": 2}
    (run / "analysis" / "anomalies.json").write_text(json.dumps(typed))
    fails(report, run / "analysis" / "anomalies.json", "is damaged")
    assert not (tmp_path / "r.html").exists()


def test_hand_edited_settings_name_the_setting(tmp_path):
    """A value of the wrong type or range in any section of config.json (a fraction of a filter,
    a string of names, NaN, a negative seed) stops with the setting named: before, some passed
    (the string "abc" read as three categories) and others died in a traceback inside torch."""
    r = CliRunner()
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    run = tmp_path / "run"
    assert r.invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run)]).exit_code == 0
    config = json.loads((run / "config.json").read_text())
    weights = (run / "model.safetensors").read_bytes()
    draw = ["draw", str(run), "-n", "2", "-o", str(tmp_path / "x.png")]
    resume = ["train", "--resume", "--out", str(run), "--epochs", "2"]
    for section, key, value, command, problem in [
        ("model", "channels", [8.5, 24], draw, "channels must be a list of 2 whole numbers, got [8.5, 24]"),
        ("model", "categories", "abc", draw, 'categories must be a list of strings, got "abc"'),
        ("model", "latent_dim", True, draw, "latent_dim must be a whole number, got true"),
        ("model", "pixel_temperature", float("nan"), draw, "pixel_temperature must be a finite number, got NaN"),
        ("model", "fitted_prior", "no", draw, 'fitted_prior must be true or false, got "no"'),
        ("train", "seed", -1, resume, "seed from 0 to 2**32 - 1"),
        ("train", "val_limit", 0, resume, "val_limit >= 1"),
        ("train", "optimizer", "sgd", resume, "optimizer must be one of 'adam', 'rmsprop', got \"sgd\""),
        ("data", "split_seed", 1.5, resume, "split_seed must be a whole number >= 0, got 1.5"),
    ]:
        edited = json.loads(json.dumps(config))
        edited[section][key] = value
        (run / "config.json").write_text(json.dumps(edited))
        res = r.invoke(main, command)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and "Traceback" not in res.output, (key, res.output)
        assert f"{run / 'config.json'}: " in lines[-1] and problem in lines[-1], lines[-1]
    edited = json.loads(json.dumps(config))
    edited["model"]["hidden"] = 64  # valid settings, but not those the weights were trained with
    (run / "config.json").write_text(json.dumps(edited))
    last = r.invoke(main, draw).output.strip().splitlines()[-1]
    assert f"{run / 'model.safetensors'}: does not match config.json (size mismatch for " in last, last
    assert (run / "model.safetensors").read_bytes() == weights and not (tmp_path / "x.png").exists()


def test_unwritable_output_names_it(tmp_path):
    """A folder where a file should go, or a file where a folder should: one line, nothing lost."""
    r = CliRunner()
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("precious")
    cases = [
        (["draw", "-o", str(tmp_path)], tmp_path, "is a folder; give the name of a file"),
        (["draw", "-o", str(blocker / "x.png")], blocker, "a file is in the way"),
        (["train", str(data), "--epochs", "1", "--out", str(blocker)], blocker, "a file is in the way"),
        (["latent", str(data), "--out-dir", str(blocker / "sub")], blocker / "sub", "a file is in the way"),
    ]
    for args, path, problem in cases:
        res = r.invoke(main, args)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert f"{path}: " in lines[0] and problem in lines[0], lines
    assert blocker.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "sheep.npy"]  # no temporary files left


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gives")
def test_unknown_or_absent_device_stops_before_training(tmp_path):
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    for device, problem in [("banana", "unknown --device 'banana'"), ("cuda", "--device cuda is not available")]:
        run = tmp_path / device
        res = CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--device", device, "--out", str(run)])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and problem in lines[0], res.output
        assert not run.exists()  # checked before the run folder is made


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gives")
def test_the_commands_that_read_whole_files_check_their_device_first(tmp_path, monkeypatch):
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    monkeypatch.chdir(tmp_path)  # the built-in model's evaluate would write ./sheep-analysis
    for command in ("evaluate", "anomalies", "latent", "clusters"):
        out = ["--out-dir", str(tmp_path / command)] if command != "evaluate" else []
        for device, problem in [("banana", "unknown --device 'banana'"), ("cuda", "--device cuda is not available")]:
            res = CliRunner().invoke(main, [command, str(data), "--device", device, *out])
            lines = res.output.strip().splitlines()
            assert res.exit_code == 2 and len(lines) == 1 and problem in lines[0], (command, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheep.npy"]  # nothing written
    res = CliRunner().invoke(main, ["latent", str(data), "--device", "cpu", "--out-dir", "on-cpu", "--json"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["latent", str(data), "--out-dir", "default", "--json"])
    assert np.array_equal(np.load("on-cpu/codes.npy"), np.load("default/codes.npy"))


def test_kmeans_on_too_few_drawings(tmp_path):
    """k-means needs more drawings than clusters: the elbow range shrinks to fit, else one line."""
    data = write_bitmap(tmp_path / "sheep.npy", n=10)  # 8 in the train split
    r = CliRunner()
    res = r.invoke(main, ["clusters", str(data), "--out-dir", str(tmp_path / "a"), "--json"])
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.output)["elbow"]) == [str(k) for k in range(2, 10)]  # the whole file by default
    res = r.invoke(main, ["clusters", str(data), "--split", "train", "--out-dir", str(tmp_path / "t"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["n"] == 8, res.output
    res = r.invoke(main, ["clusters", str(data), "--split", "train", "--k", "9", "--out-dir", str(tmp_path / "b")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and "8 drawings for k = 9" in lines[0], res.output
    copies = tmp_path / "copies.npy"  # three drawings, each many times: three distinct codes
    np.save(copies, np.repeat(np.load(data)[:3], 20, axis=0))
    res = r.invoke(main, ["clusters", str(copies), "--out-dir", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0 and "Warning" not in res.output, res.output
    assert list(json.loads(res.output)["elbow"]) == ["2"]
    res = r.invoke(main, ["clusters", str(copies), "--k", "4", "--out-dir", str(tmp_path / "d")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and "60 drawings (3 distinct) for k = 4" in lines[0], res.output


def test_a_file_of_a_few_drawings_trains_and_names_its_empty_splits(tmp_path):
    """Two drawings: 10% of them rounds to none, so the valid and test splits are empty. Training
    validates on its own drawings (with a warning); a command asked for an empty split says so."""
    data = write_bitmap(tmp_path / "two.npy", n=2)
    run = tmp_path / "run"
    r = CliRunner()
    args = ["train", str(data), "--epochs", "1", "--out", str(run)]
    res = r.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "no drawing in the validation split" in res.output
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"] > 0
    for command in (["evaluate", str(run)], ["reconstruct", str(run)], ["show", str(data), "--split", "valid"]):
        res = r.invoke(main, command)
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert "two.npy: has no drawing in its" in lines[0] and "(2 in all)" in lines[0], res.output


@pytest.mark.parametrize(
    "args",
    [
        ["draw", "--mean", "inf"],
        ["draw", "--std", "nan"],
        ["manifold", "--range", "inf"],
        ["anomalies", "DATA", "--threshold", "nan"],
        ["anomalies", "DATA", "--quantile", "nan"],
        ["train", "DATA", "--lr", "inf"],
    ],
    ids=lambda a: "-".join(a),
)
def test_non_finite_numbers_are_refused(tmp_path, args):
    """nan passes click's range checks and inf its open bounds; either would draw blanks or crash later."""
    data = write_bitmap(tmp_path / "sheep.npy", n=20)
    args = [str(data) if a == "DATA" else a for a in args]
    res = CliRunner().invoke(main, args)  # refused while parsing, before anything is loaded or written
    assert res.exit_code == 2 and "is not a finite number" in res.output, res.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_help_shows_no_empty_range(command):
    """A finite-number option without bounds says nothing about its range (not "x<=None")."""
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0 and "None]" not in res.output, res.output


HELP_PROBE = """
import sys
from electric_sheep.cli import main
from electric_sheep.data.drawings import cached_category_path
try:
    main(["--help"])
except SystemExit:
    pass
print("torch loaded" if "torch" in sys.modules else "torch not loaded", file=sys.stderr)
"""


def test_help_answers_without_loading_torch():
    """`sheep --help` answers at once: torch (seconds to import) loads only when a command runs."""
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr
    assert done.stderr.strip().endswith("torch not loaded"), done.stderr


def test_bad_epoch_lists(tmp_path):
    for command in (["snapshots"], ["report", "-o", str(tmp_path / "r.html")]):
        res = CliRunner().invoke(main, [*command, "--epochs", "5,x"])
        assert res.exit_code == 2 and "give comma-separated integers" in res.output, res.output
    assert not (tmp_path / "r.html").exists()


def test_a_missing_run_folder_before_data_is_named_and_nothing_made(tmp_path):
    """RUN_DIR DATA where RUN_DIR is no run: one line, and no RUN_DIR/analysis left behind."""
    data = write_bitmap(tmp_path / "sheep.npy", n=20)
    for command in ("anomalies", "latent", "clusters", "evaluate"):
        missing = tmp_path / f"no-run-{command}"
        res = CliRunner().invoke(main, [command, str(missing), str(data)])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert f"{missing}: not a run folder" in lines[0] and not missing.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["draw", "--seed", "-1"],
        ["dream", "--seed", str(2**64)],
        ["dream", "--ms", str(10**23)],
        ["anomalies", "DATA", "--seed", "-5"],
        ["train", "DATA", "--seed", "-1"],
    ],
    ids=lambda a: "-".join(a)[:30],
)
def test_integers_out_of_range_are_refused_while_parsing(tmp_path, args):
    """A negative or 65-bit seed, a frame longer than a GIF holds: numpy, torch or Pillow would
    otherwise fail with a traceback."""
    data = write_bitmap(tmp_path / "sheep.npy", n=20)
    res = CliRunner().invoke(main, [str(data) if a == "DATA" else a for a in args])
    assert res.exit_code == 2 and "is not in the range" in res.output, res.output


@pytest.mark.parametrize(
    "args",
    [
        ["draw", "--mean", "1e300"],
        ["draw", "--std", "1e39"],
        ["draw", "--temperature", "1e308"],
        ["manifold", "--range", "1e300"],
        ["explore", "--range", "1e300"],
    ],
    ids=lambda a: "-".join(a)[:30],
)
def test_codes_past_float32_are_refused_in_words(tmp_path, args):
    """Codes that overflow float32 would decode to a picture of NaNs after numpy's warnings."""
    out = tmp_path / "out.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        res = CliRunner().invoke(main, [*args, "-o", str(out)])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "codes beyond float32's range" in lines[0] and f"{float(args[-1]):g}" in lines[0] and not out.exists()


@pytest.mark.parametrize(
    "option", [["--hidden", "1000000000"], ["--latent-dim", str(10**23)], ["--channels", "99999,99999"]]
)
def test_a_model_no_memory_holds_is_refused_before_the_run_folder_is_made(tmp_path, option):
    data = write_bitmap(tmp_path / "sheep.npy", n=20)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run), *option])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "the model is too large to build" in lines[0] or "numbers, more than 2,147,483,648" in lines[0]
    assert not run.exists()


def test_a_run_whose_config_asks_for_a_huge_model_names_its_config(tmp_path):
    """A hand-edited config.json whose sizes no memory holds: the file named, no allocation tried."""
    run = shutil.copytree(builtin_run_dir(), tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"]["latent_dim"] = 10**6
    (run / "config.json").write_text(json.dumps(config))
    res = CliRunner().invoke(main, ["draw", str(run), "-o", str(tmp_path / "x.png")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"{run / 'config.json'}: the model would hold" in lines[0] and not (tmp_path / "x.png").exists()


def test_pages_of_named_drawings_that_are_not_there_say_so(tmp_path):
    """report and explore leave out what needs drawings when a run has none recorded, but drawings
    the user names must be there: no page quietly drawn without them."""
    missing = tmp_path / "missing.npy"
    for command in ("report", "explore"):
        out = tmp_path / f"{command}.html"
        res = CliRunner().invoke(main, [command, str(builtin_run_dir()), str(missing), "-o", str(out)])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and f"{missing}: no such file" in lines[0], res.output
        assert not out.exists()


def test_a_folder_of_pictures_among_several_files_is_named(tmp_path):
    from PIL import Image

    data = write_bitmap(tmp_path / "sheep.npy", n=20)
    folder = tmp_path / "doodles"
    folder.mkdir()
    Image.fromarray(np.kron(np.eye(28, dtype=np.uint8) * 255, np.ones((4, 4), np.uint8))).save(folder / "a.png")
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", str(data), str(folder), "--epochs", "1", "--out", str(run)])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and f"{folder}: is a folder of pictures" in lines[0], res.output
    assert not run.exists()


def test_a_training_file_moved_or_changed_since_training_is_named(tmp_path):
    """Commands that read the run's own data: a file no longer there is named with what to do, one
    that changed since training (grown: split otherwise) is read with a warning."""
    r = CliRunner()
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    run = tmp_path / "run"
    assert r.invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run)]).exit_code == 0
    evaluate = ["evaluate", str(run), "--k", "2"]
    res = r.invoke(main, evaluate)
    assert res.exit_code == 0 and "changed" not in res.output, res.output
    np.save(data, np.concatenate([np.load(data), np.load(write_bitmap(tmp_path / "more.npy", n=10, seed=1))]))
    res = r.invoke(main, evaluate)
    assert res.exit_code == 0 and f"{data} has changed since {run} was trained on it" in res.output, res.output
    data.rename(tmp_path / "elsewhere.npy")
    res = r.invoke(main, evaluate)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"the file it was trained on, {data}, is not there any more: give DATA" in lines[0]
    res = r.invoke(main, [*evaluate[:2], str(tmp_path / "elsewhere.npy"), "--k", "2"])
    assert res.exit_code == 0, res.output
