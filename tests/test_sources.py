"""Several files in one run: streamed from their memory maps, labelled, balanced, checked first."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_bitmap

from electric_sheep.cli import main
from electric_sheep.data.drawings import load_drawings
from electric_sheep.data.sources import DrawingSet, expand_sources
from electric_sheep.errors import DataError


def _labelled(path, n, value):
    """n drawings whose every pixel is ``value``: a drawing tells which file it came from."""
    np.save(path, np.full((n, 784), value, dtype=np.uint8))
    return path


@pytest.fixture
def three(tmp_path):
    return [_labelled(tmp_path / f"{name}.npy", n, v) for name, n, v in (("a", 40, 10), ("b", 200, 20), ("c", 60, 30))]


def test_a_set_of_files_reads_the_right_rows_and_labels(three):
    sets = [load_drawings(p) for p in three]
    ds = DrawingSet.from_drawings(sets, "train")
    assert ds.names == ["a", "b", "c"] and len(ds) == sum(len(d.splits["train"]) for d in sets)
    assert all(isinstance(d.images, np.memmap) for d in sets)  # mapped, not read
    idx = np.random.default_rng(0).permutation(len(ds))[:50]
    values = ds.take(idx)[:, 0, 0]
    np.testing.assert_array_equal(values, np.array([10, 20, 30])[ds.labels(idx)])
    whole = np.asarray(ds)  # every drawing in order, as the scores read a small set
    assert whole.shape == (len(ds), 28, 28) and whole.dtype == np.uint8
    np.testing.assert_array_equal(whole[:, 0, 0], np.array([10, 20, 30])[ds.labels(np.arange(len(ds)))])


def test_epochs_are_seeded_and_balance_draws_every_category_equally(three):
    ds = DrawingSet.from_drawings([load_drawings(p) for p in three], "train")
    plain = ds.epoch_order(seed=1, epoch=3, balance=False)
    assert sorted(plain) == list(range(len(ds)))
    np.testing.assert_array_equal(plain, ds.epoch_order(seed=1, epoch=3, balance=False))
    assert not np.array_equal(plain, ds.epoch_order(seed=1, epoch=4, balance=False))
    balanced = ds.epoch_order(seed=1, epoch=3, balance=True)
    counts = np.bincount(ds.labels(balanced), minlength=3)
    assert counts.tolist() == [len(ds) // 3] * 3  # the small file repeats, the large one is subsampled


def test_patterns_expand_and_a_file_given_twice_is_refused(three, tmp_path):
    assert expand_sources([str(tmp_path / "*.npy")]) == [str(p) for p in three]
    with pytest.raises(DataError, match="matches no file"):
        expand_sources([str(tmp_path / "*.ndjson")])
    with pytest.raises(DataError, match="more than once"):
        expand_sources([str(three[0]), str(three[0])])


def test_train_on_several_files_records_them_and_resumes_only_with_them(three, tmp_path):
    out = tmp_path / "run"
    common = ["--epochs", "1", "--batch-size", "16", "--quiet", "--out", str(out)]
    r = CliRunner().invoke(main, ["train", *map(str, three), "--balance", *common])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "config.json").read_text())["data"]
    assert [s["category"] for s in data["sources"]] == ["a", "b", "c"] and data["balance"] is True
    assert data["n_train"] == sum(s["n_train"] for s in data["sources"])
    r = CliRunner().invoke(main, ["train", *map(str, reversed(three)), "--resume", "--epochs", "2", "--out", str(out)])
    assert r.exit_code == 2 and "same order" in r.output
    r = CliRunner().invoke(main, ["train", str(tmp_path / "*.npy"), "--resume", "--epochs", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    r = CliRunner().invoke(main, ["train", "--resume", "--epochs", "3", "--out", str(out)])  # the files it recorded
    assert r.exit_code == 0, r.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    one = ["train", str(three[0]), "--balance", *common[:-1], str(tmp_path / "one")]
    r = CliRunner().invoke(main, one)  # nothing to balance: said, not ignored
    assert r.exit_code == 0 and "--balance evens out several files; one file is used as it is" in r.stderr


def test_a_run_of_several_files_uses_all_of_them_without_data(three, tmp_path, monkeypatch):
    from electric_sheep.render import latent_figures, plots
    from electric_sheep.runs.run_sources import run_data

    run = tmp_path / "run"
    board, scatter = {}, plots.latent_scatter_figure

    def spy(plane, title, labels, names, **options):
        board.update(labels=labels, names=names)
        return scatter(plane, title, labels, names, **options)

    with monkeypatch.context() as m:  # TensorBoard's latent plot, coloured by category
        m.setattr(plots, "latent_scatter_figure", spy)
        r = CliRunner().invoke(main, ["train", *map(str, three), "--epochs", "1", "--quiet", "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert board["names"] == {0: "a", 1: "b", 2: "c"} and np.bincount(board["labels"]).tolist() == [4, 20, 6]
    saved = np.load(run / "latents" / "categories.npy")  # validated in an order that mixes the files
    np.testing.assert_array_equal(saved, board["labels"])
    assert np.bincount(saved[:10], minlength=3).tolist() == [1, 7, 2]
    drawings = run_data(run)  # every file, each drawing labelled with its file's category
    sets = [load_drawings(p) for p in three]
    assert len(drawings) == sum(map(len, sets)) and drawings.name() == "a, b and c"
    for split in ("train", "valid", "test"):
        labels, names = drawings.categories(split)
        assert names == ["a", "b", "c"] and np.bincount(labels).tolist() == [len(d.splits[split]) for d in sets]
        np.testing.assert_array_equal(drawings.split(split)[:, 0, 0], np.array([10, 20, 30])[labels])
    first = drawings.categories("test")[0][:10]  # the first of a split are of every file, in proportion
    assert np.bincount(first, minlength=3).tolist() == [1, 7, 2], first
    plotted, scatter = {}, latent_figures.latent_scatter_figure
    spy = lambda *args, **options: plotted.update(options) or scatter(*args, **options)  # noqa: E731
    monkeypatch.setattr(latent_figures, "latent_scatter_figure", spy)
    r = CliRunner().invoke(main, ["latent", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["categories"] == {"a": 40, "b": 200, "c": 60}
    assert np.bincount(plotted["labels"]).tolist() == [40, 200, 60]  # the map coloured by category
    assert plotted["label_names"] == {0: "a", 1: "b", 2: "c"} and "of a, b and c" in plotted["title"]
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "3", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    parts = result["categories"]
    assert [parts[c]["n"] for c in "abc"] == [len(d.splits["test"]) for d in sets] == [4, 20, 6]
    alone = json.loads(CliRunner().invoke(main, ["evaluate", str(run), str(three[1]), "--k", "3", "--json"]).output)
    assert parts["b"]["iwae_nll"] == alone["iwae_nll"]  # each file as it would be evaluated alone
    mean = sum(parts[c]["iwae_nll"] * parts[c]["n"] for c in "abc") / 30
    assert result["n"] == 30 and result["iwae_nll"] == pytest.approx(mean)
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "3"])
    assert "default preset on 30 test drawings of a, b and c:" in r.output, r.output
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "3", "--limit", "2", "--json"])  # the first two: b's
    assert r.exit_code == 0 and list(json.loads(r.output)["categories"]) == ["b"], r.output
    r = CliRunner().invoke(main, ["clusters", str(run), "--k", "3", "--json"])  # a file's drawings share a code
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["adjusted_rand_index"] == 1.0  # each cluster one whole category
    assert sorted(sorted(t.values()) for t in result["categories"].values()) == [[0, 0, 40], [0, 0, 60], [0, 0, 200]]
    r = CliRunner().invoke(main, ["report", str(run), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0 and "leaves out" not in r.output, r.output
    report = (tmp_path / "r.html").read_text()
    assert "id='reconstructions'" in report and "Against the categories (adjusted Rand index " in report
    r = CliRunner().invoke(main, ["anomalies", str(run), "--split", "test", "--json"])  # the run's own drawings
    assert r.exit_code == 0 and json.loads(r.output)["n"] == 30, r.output
    assert sum(json.loads(r.output)["flagged_by_source"].values()) == json.loads(r.output)["n_flagged"]
    with open(run / "analysis" / "anomaly_scores.csv") as f:
        rows = [line.rstrip("\n").split(",") for line in f]
    assert rows[0][-2:] == ["source", "source_row"]
    for c, d in zip("abc", sets, strict=True):  # each file's test drawings, named by their rows in it
        assert sorted(int(row[-1]) for row in rows[1:] if row[-2] == c) == sorted(d.splits["test"].tolist())
    from electric_sheep.render.latent_figures import snapshots_figure

    legend = snapshots_figure(run, [1])[0].axes[0].get_legend()  # the codes saved in training, by category
    valid = [f"{c} ({len(d.splits['valid'])})" for c, d in zip("abc", sets, strict=True)]
    assert [t.get_text() for t in legend.get_texts()] == valid
    np.save(run / "latents" / "categories.npy", np.zeros(3, np.int16))  # not one per saved code
    r = CliRunner().invoke(main, ["snapshots", str(run)])
    assert r.exit_code == 2 and "categories.npy" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    three[2].unlink()
    r = CliRunner().invoke(main, ["latent", str(run)])
    assert r.exit_code == 2 and "c.npy" in r.output and "is not there any more" in r.output, r.output


@pytest.mark.parametrize("damage", ["truncated", "other size"])
def test_a_bad_file_among_several_is_named_before_anything_is_written(three, tmp_path, damage):
    bad = tmp_path / "bad.npy"
    if damage == "truncated":
        write_bitmap(bad, n=100)
        bad.write_bytes(bad.read_bytes()[:3000])
    else:
        np.save(bad, np.zeros((10, 28 * 32), dtype=np.uint8))
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(three[0]), str(bad), str(three[1]), "--out", str(out), "--quiet"])
    assert r.exit_code == 2 and "bad.npy" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not out.exists()


def test_streamed_rows_continue_after_a_kill_and_never_mix_jobs(tmp_path, monkeypatch):
    from electric_sheep.runs import streaming

    monkeypatch.setenv(streaming.CHUNK_ENV, "10")
    images = np.arange(95 * 784, dtype=np.int64).reshape(95, 28, 28).astype(np.uint8)
    seen = []
    quiet = {"width": 3, "desc": "", "progress": False}

    def compute(start, stop, fail_after=None):
        x = images[start:stop]
        seen.append(len(x))
        if fail_after is not None and len(seen) > fail_after:
            raise KeyboardInterrupt
        return x.reshape(len(x), -1)[:, :3].astype(np.float32)

    target = tmp_path / "out" / "rows.npy"
    job = {"data": "x", "split": "all"}
    with pytest.raises(KeyboardInterrupt):
        streaming.stream_rows(
            len(images), lambda a, b: compute(a, b, 4), target, width=3, job=job, desc="", progress=False
        )
    assert not target.exists() and len(seen) == 5  # four chunks kept, the fifth lost
    seen.clear()
    rows = streaming.stream_rows(len(images), compute, target, job=job, **quiet)
    assert sum(seen) == 95 - 40  # only what was left
    np.testing.assert_array_equal(rows, images.reshape(95, -1)[:, :3])
    assert sorted(p.name for p in target.parent.iterdir()) == ["rows.job.json", "rows.npy"]
    seen.clear()
    streaming.stream_rows(len(images), compute, target, job=job, **quiet)
    assert seen == []  # finished: the same job is read back, not computed again
    streaming.stream_rows(len(images), compute, target, job={**job, "model": "other"}, **quiet)
    assert sum(seen) == 95  # another job's rows are never reused


@pytest.mark.parametrize("step", ["write_json", "replace"])
def test_streamed_rows_killed_as_they_are_finished_are_not_computed_again(tmp_path, monkeypatch, step):
    """A kill in the moment every row is written and the file takes its name: the same job again
    finds its rows, and a finished file of another job is never taken for them."""
    from electric_sheep.runs import streaming

    monkeypatch.setenv(streaming.CHUNK_ENV, "10")
    target, seen = tmp_path / "rows.npy", []

    def compute(start, stop, shift=0):
        seen.append(stop - start)
        return np.arange(start, stop, dtype=np.float32)[:, None] + shift

    def rows(job, shift=0):
        return streaming.stream_rows(
            30, lambda a, b: compute(a, b, shift), target, width=1, job=job, desc="", progress=False
        )

    rows({"data": "old"}, shift=100)  # another job's finished rows, of the same shape
    real = {"write_json": streaming.write_json, "replace": os.replace}[step]
    name = {"write_json": "rows.job.json", "replace": "rows.partial.npy"}[step]

    def killed_at_the_rows(path, *args):
        if os.path.basename(path) == name:  # recording the job, or naming the rows
            raise KeyboardInterrupt
        return real(path, *args)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(streaming if step == "write_json" else os, step, killed_at_the_rows)
        rows({"data": "new"})
    seen.clear()
    np.testing.assert_array_equal(rows({"data": "new"})[:, 0], np.arange(30))
    assert seen == []  # nothing computed again


def test_damaged_streamed_rows_are_computed_again(tmp_path, monkeypatch):
    """A partial or finished rows file whose header was damaged (a full disk, a bad copy) is
    computed again, not a traceback."""
    from electric_sheep.runs import streaming

    monkeypatch.setenv(streaming.CHUNK_ENV, "10")
    target, job, seen = tmp_path / "rows.npy", {"data": "x"}, []

    def compute(start, stop, fail_after=None):
        seen.append(stop - start)
        if fail_after is not None and len(seen) > fail_after:
            raise KeyboardInterrupt
        return np.arange(start, stop, dtype=np.float32)[:, None]

    def damage(path):
        raw = bytearray(path.read_bytes())
        raw[raw.index(b"}") + 3] = ord('"')  # numpy's parser fails on the header
        path.write_bytes(bytes(raw))

    def rows():
        return streaming.stream_rows(30, compute, target, width=1, job=job, desc="", progress=False)

    with pytest.raises(KeyboardInterrupt):
        streaming.stream_rows(30, lambda a, b: compute(a, b, 1), target, width=1, job=job, desc="", progress=False)
    damage(tmp_path / "rows.partial.npy")
    seen.clear()
    np.testing.assert_array_equal(rows()[:, 0], np.arange(30))
    assert sum(seen) == 30  # all of it again: the chunk kept was in the damaged file
    damage(target)
    seen.clear()
    np.testing.assert_array_equal(rows()[:, 0], np.arange(30))
    assert sum(seen) == 30


def test_no_room_for_the_streamed_rows_is_one_line(run, tmp_path, monkeypatch):
    """The rows' file is reserved on disk before any is written: a memory map into a full disk
    would kill the process (SIGBUS) with no word."""
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from electric_sheep.analysis import anomaly

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    monkeypatch.setattr(anomaly, "SMALL_SET", 50)  # 60 drawings stand for a file of millions: streamed
    data = write_bitmap(tmp_path / "many.npy", n=60)
    out = tmp_path / "full"
    r = CliRunner().invoke(main, ["anomalies", str(run), str(data), "--out-dir", str(out)])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "No space left on device" in lines[0], r.output
    assert not list((out / ".anomaly_parts").iterdir())  # no half-made file left behind


def test_latent_of_a_whole_file_scores_every_drawing(run, tmp_path):
    data = write_bitmap(tmp_path / "many.npy", n=230)
    r = CliRunner().invoke(main, ["latent", str(run), str(data), "--split", "all", "--out-dir", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "o" / "codes.npy").shape[0] == 230 and "encoded 230 drawings" in r.output


def test_anomalies_killed_halfway_continue_to_the_same_scores(run, tmp_path, monkeypatch):
    from electric_sheep.analysis import anomaly, neighbours
    from electric_sheep.runs import streaming

    data = write_bitmap(tmp_path / "many.npy", n=400)
    args = ["anomalies", str(run), str(data), "--split", "all", "--json"]
    monkeypatch.setenv(streaming.CHUNK_ENV, "100")  # four chunks
    monkeypatch.setattr(neighbours, "REFERENCE", 200)  # fewer than the drawings: they stream chunk by chunk
    monkeypatch.setattr(anomaly, "SMALL_SET", 300)  # not scored in memory among the run's drawings
    r = CliRunner().invoke(main, [*args, "--out-dir", str(tmp_path / "clean")])
    assert r.exit_code == 0, r.output
    calls, original = [], neighbours.Neighbourhood.score_points

    def dies_on_the_sixth(self, *a):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return original(self, *a)

    monkeypatch.setattr(neighbours.Neighbourhood, "score_points", dies_on_the_sixth)
    killed = tmp_path / "killed"
    r = CliRunner().invoke(main, [*args, "--out-dir", str(killed)])
    assert r.exit_code == 130 and not (killed / "anomaly_scores.csv").exists()
    model_pass = "+".join(("elbo-ink", *anomaly.TYPICALITY))
    assert list((killed / ".anomaly_parts").glob(f"{model_pass}@*.npy"))  # the model's pass was kept
    monkeypatch.setattr(neighbours.Neighbourhood, "score_points", original)
    r = CliRunner().invoke(main, [*args, "--out-dir", str(killed)])
    assert r.exit_code == 0, r.output
    assert not (killed / ".anomaly_parts").exists()
    clean = np.loadtxt(tmp_path / "clean" / "anomaly_scores.csv", delimiter=",", skiprows=1)
    again = np.loadtxt(killed / "anomaly_scores.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(again, clean)


def test_two_processes_share_the_scoring_and_the_first_writes(run, tmp_path):
    data = write_bitmap(tmp_path / "many.npy", n=600)  # not a small set, which the first process scores alone
    # Four chunks, two for each process; one thread each, as torchrun sets, so that sums agree bit for bit.
    env = {**os.environ, "ELECTRIC_SHEEP_CHUNK": "150", "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    cmd = [sys.executable, "-m", "electric_sheep", "anomalies", str(run), str(data), "--split", "all"]
    proc = subprocess.run([*cmd, "--out-dir", str(one)], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for command in (["anomalies", "--split", "all"], ["latent", "--split", "all", "--quiet"]):
        cmd = [*torchrun, "-m", "electric_sheep", command[0], str(run), str(data), *command[1:], "--out-dir", str(two)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.count("wrote") >= 1 and "drawings" in proc.stdout
    assert (two / "anomaly_scores.csv").read_text() == (one / "anomaly_scores.csv").read_text()
    assert not (two / ".anomaly_parts").exists()
    assert np.load(two / "codes.npy").shape[0] == 600 and (two / "latent.png").exists()


def _bars(path, n, horizontal, seed):
    """n drawings of two or three bars across the whole square, all horizontal or all vertical."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        for at in rng.choice(np.arange(2, 25, 3), size=rng.integers(2, 4), replace=False):
            image[at : at + 2, 2:26] = 255
    np.save(path, (images if horizontal else images.transpose(0, 2, 1)).reshape(n, 784))
    return path


def _across(picture):
    """log(spread of row sums / spread of column sums): > 0 for horizontal strokes, < 0 for vertical."""
    return np.log((picture.sum(axis=1).std() + 1e-3) / (picture.sum(axis=0).std() + 1e-3))


def test_a_conditional_model_draws_the_category_asked_for_and_names_what_drawings_resemble(tmp_path):
    from electric_sheep.analysis.generate import draw, dream, manifold
    from electric_sheep.render.plots import manifold_figure
    from electric_sheep.runs.checkpoint import load_model

    flat, tall = _bars(tmp_path / "flat.npy", 300, True, 0), _bars(tmp_path / "tall.npy", 300, False, 1)
    run = tmp_path / "run"
    # No pixel head: the decoder alone must draw what the category says, which a short run learns.
    args = ["train", str(flat), str(tall), "--conditional", "--pixel-head", "0", "--epochs", "6", "--batch-size", "16"]
    args += ["--kl-start", "0", "--kl-steep", "1"]  # the KL on early: codes keep only what the category does not say
    r = CliRunner().invoke(main, [*args, "--out", str(run), "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["model"]["categories"] == ["flat", "tall"]
    model = load_model(run)
    for name in ("flat", "tall"):
        r = CliRunner().invoke(main, ["draw", str(run), "--category", name, "-o", str(tmp_path / f"{name}.png")])
        assert r.exit_code == 0 and f"drawings of {name}" in r.output, r.output
    drawn = {name: np.median([_across(d) for d in draw(model, 32, category=name)]) for name in ("flat", "tall")}
    assert drawn["flat"] > 0.3 and drawn["tall"] < -0.1, drawn  # each drawn across its own way
    frames = dream(model, 16, 6, category="tall")  # (frames, n, 28, 28): dreams of tall bars
    assert np.median([_across(d) for d in frames.reshape(-1, 28, 28)]) < -0.1
    r = CliRunner().invoke(main, ["dream", str(run), "--category", "flat", "-n", "2", "-o", str(tmp_path / "d.gif")])
    assert r.exit_code == 0 and "(2 dreams of flat," in r.output, r.output
    r = CliRunner().invoke(
        main, ["manifold", str(run), "--category", "tall", "--grid", "6", "-o", str(tmp_path / "m.png")]
    )
    assert r.exit_code == 0 and "(6x6 decodings of tall)" in r.output, r.output
    grid = manifold(model, 6, category="tall")
    assert np.median([_across(d) for d in grid]) < -0.1
    title = manifold_figure(grid, 6, 3.0, model.config.latent_dim, "tall").axes[0].get_title()
    assert "draws as tall across" in title, title
    nll = {}  # flat bars evaluated as what the run learned from their file, then told they are tall
    for told in ([], ["--category", "tall"]):
        r = CliRunner().invoke(main, ["evaluate", str(run), str(flat), "--k", "5", *told, "--json"])
        assert r.exit_code == 0, r.output
        result = json.loads(r.output)
        nll[result["category"]] = result["iwae_nll"]
    assert set(nll) == {"flat", "tall"} and nll["flat"] < nll["tall"], nll
    r = CliRunner().invoke(main, ["report", str(run), "-o", str(tmp_path / "r.html")])  # a row per category
    assert r.exit_code == 0 and "alt='drawn as each category'" in (tmp_path / "r.html").read_text(), r.output
    assert "16-D latent, class-conditional (flat, tall)</h1>" in (tmp_path / "r.html").read_text()
    assert "id='reconstructions'" in (tmp_path / "r.html").read_text()  # the drawings of both files
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "5", "--json"])  # each file told its own
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["categories"]["flat"]["iwae_nll"] == nll["flat"]
    r = CliRunner().invoke(main, ["draw", str(run), "--category", "cow", "-o", str(tmp_path / "c.png")])
    assert r.exit_code == 2 and "flat, tall" in r.output and len(r.output.strip().splitlines()) == 1
    out = tmp_path / "screen"
    r = CliRunner().invoke(main, ["anomalies", str(run), str(tall), "--split", "all", "--out-dir", str(out)])
    assert r.exit_code == 0, r.output
    assert "most resemble: flat" in r.output
    with open(out / "anomaly_scores.csv") as f:
        resembles = [row["category"] for row in csv.DictReader(f)]
    assert len(resembles) == 300 and resembles.count("tall") >= 0.9 * 300
