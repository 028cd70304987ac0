"""Run folders under faults: one writer at a time, checkpoints that a kill cannot tear, weights
that are checked on load, resume that recognises its data, training that reads only what it uses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_bitmap
from safetensors.torch import load_file, save_file
from test_train import _train, _weights

from electric_sheep.cli import main
from electric_sheep.core.trainer import Callback
from electric_sheep.errors import ConfigError, DataError
from electric_sheep.runs import checkpoint as ckpt
from electric_sheep.runs.fileio import FolderInUse, folder_lock
from electric_sheep.runs.train_data import train_on_data


def _one_line(result, *needles: str) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def test_a_second_writer_is_refused_at_once(tmp_path):
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    run = tmp_path / "run"
    with folder_lock(run):  # another training holds the folder
        result = CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run)])
        _one_line(result, str(run), "is in use", f"process {__import__('os').getpid()}")
        with pytest.raises(FolderInUse):
            _train(run, epochs=1)
    assert not (run / ckpt.CONFIG).exists()
    assert CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run)]).exit_code == 0


def test_a_second_command_streaming_into_the_same_folder_is_refused(tmp_path):
    """Two `sheep anomalies` (or `latent`) writing into one OUT_DIR would mix their partial rows."""
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    out = tmp_path / "analysis"
    with folder_lock(out, "anomaly scores"):  # another command is writing there
        for command in (["anomalies", str(data)], ["latent", str(ckpt.builtin_run_dir()), str(data)]):
            result = CliRunner().invoke(main, [*command, "--out-dir", str(out)])
            _one_line(result, str(out), "is in use")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    assert CliRunner().invoke(main, ["anomalies", str(data), "--out-dir", str(out)]).exit_code == 0


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    """safetensors reports a full disk as its own error, not an OSError: it is named like any
    other file that cannot be written, with what the run still holds; that checkpoint stays, and
    once the disk has room again the run goes on from it."""
    from safetensors import SafetensorError

    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    run = tmp_path / "run"
    assert CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--out", str(run)]).exit_code == 0
    weights = (run / ckpt.WEIGHTS).read_bytes()

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ckpt, "save_file", full)
    result = CliRunner().invoke(main, ["train", str(data), "--epochs", "2", "--out", str(run), "--resume"])
    _one_line(result, f"{run}/", "cannot be written (No space left on device)", f"{run} keeps epoch 1;", "--resume")
    assert (run / ckpt.WEIGHTS).read_bytes() == weights
    monkeypatch.undo()
    assert CliRunner().invoke(main, ["train", "--epochs", "2", "--out", str(run), "--resume"]).exit_code == 0
    assert [row["epoch"] for row in ckpt.read_metrics(run)] == [1, 2]


def test_a_config_that_asks_for_more_than_its_weights_hold_costs_no_memory(tmp_path, monkeypatch):
    """A shared run folder's config.json edited to a huge model (its weights the small model's) is
    refused by comparing shapes on the meta device, before any model is built."""
    run = tmp_path / "run"
    shutil.copytree(ckpt.builtin_run_dir(), run)
    config = json.loads((run / ckpt.CONFIG).read_text())
    config["model"]["hidden"] = 100_000  # dense layers of 2.4 * 10**8 numbers (1 GB), under the size limit
    (run / ckpt.CONFIG).write_text(json.dumps(config))
    built = []
    monkeypatch.setattr(ckpt, "build_model", lambda cfg: built.append(cfg))
    result = CliRunner().invoke(main, ["draw", str(run), "-o", str(tmp_path / "x.png")])
    line = _one_line(result, f"{run / ckpt.WEIGHTS}: does not match config.json (size mismatch for ")
    assert "[128] in the file, [100000] by config.json" in line and built == []
    assert not (tmp_path / "x.png").exists()


def test_a_resumed_run_whose_config_outgrew_its_checkpoint_costs_no_memory(tmp_path, monkeypatch):
    """--resume of a shared run folder whose config.json was edited to a huge model is refused from
    the checkpoint's header (or, for runs saved before it held the weights, model.safetensors'),
    before training builds the model; the run, its config mended, resumes."""
    from electric_sheep.runs import training

    data, run = write_bitmap(tmp_path / "sheep.npy", n=40), tmp_path / "run"
    train_on_data(data, run, limit=32, epochs=1, progress=False, log=lambda s: None)
    config = json.loads((run / ckpt.CONFIG).read_text())
    hidden, config["model"]["hidden"] = config["model"]["hidden"], 100_000
    (run / ckpt.CONFIG).write_text(json.dumps(config))
    built = []
    monkeypatch.setattr(training, "build_model", lambda cfg: built.append(cfg))
    state = (run / ckpt.STATE).read_bytes()
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(run), "--epochs", "2"])
    line = _one_line(result, f"{run / ckpt.STATE}: does not match config.json (size mismatch for ")
    assert "[100000] by config.json" in line and built == []
    assert (run / ckpt.STATE).read_bytes() == state
    # a run saved before the checkpoint held the weights: its model.safetensors is compared instead
    tensors, meta = ckpt._load_tensors(run / ckpt.STATE, "a training state")
    older = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    ckpt._save_tensors(older, run / ckpt.STATE, {k: v for k, v in meta.items() if k != ckpt.CHECKSUM})
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(run), "--epochs", "2"])
    _one_line(result, f"{run / ckpt.WEIGHTS}: does not match config.json (size mismatch for ")
    assert built == []
    monkeypatch.undo()
    (run / ckpt.CONFIG).write_text(json.dumps({**config, "model": {**config["model"], "hidden": hidden}}))
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(run), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert [row["epoch"] for row in ckpt.read_metrics(run)] == [1, 2]


def _with_sparse_tensor(path: Path, name: str, numbers: int) -> None:
    """Add to a safetensors file a float32 tensor of ``numbers`` zeros that takes no disk (the
    file is extended sparsely): what a hostile run folder can list at no cost to itself."""
    import struct

    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    end = len(body)
    header[name] = {"dtype": "F32", "shape": [numbers], "data_offsets": [end, end + 4 * numbers]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    os.truncate(path, 8 + len(text) + end + 4 * numbers)


def test_files_that_list_more_tensors_than_the_model_holds_are_never_loaded(tmp_path, monkeypatch):
    """A weights file or a checkpoint of a shared run folder listing a gigabyte more than its
    model (a sparse file: no disk) is refused from its header, before any tensor is read."""
    run = tmp_path / "run"
    shutil.copytree(ckpt.builtin_run_dir(), run)
    _with_sparse_tensor(run / ckpt.WEIGHTS, "junk", 2**28)
    loaded = []
    monkeypatch.setattr(ckpt, "_load_tensors", lambda *a: loaded.append(a))
    result = CliRunner().invoke(main, ["draw", str(run), "-o", str(tmp_path / "x.png")])
    _one_line(result, f"{run / ckpt.WEIGHTS}: does not match config.json (size mismatch for junk: in the file, not")
    monkeypatch.undo()
    data, trained = write_bitmap(tmp_path / "sheep.npy", n=40), tmp_path / "trained"
    train_on_data(data, trained, limit=32, epochs=1, progress=False, log=lambda s: None)
    _with_sparse_tensor(trained / ckpt.STATE, "optim.0.junk", 2**28)
    monkeypatch.setattr(ckpt, "_load_tensors", lambda *a: loaded.append(a))
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(trained), "--epochs", "2"])
    _one_line(result, f"{trained / ckpt.STATE}: holds ", "numbers, more than a checkpoint of this model holds")
    assert loaded == []


def test_a_lock_is_taken_on_a_full_disk(tmp_path, monkeypatch):
    """Writing the holder's process id is a courtesy: on a full disk the lock is still taken, and
    the command goes on to name the file it cannot write."""
    import errno
    import os

    def full(fd, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "ftruncate", full)
    with folder_lock(tmp_path / "out"), pytest.raises(FolderInUse, match="another process"):
        with folder_lock(tmp_path / "out"):
            pass


def test_the_lock_dies_with_its_process(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from electric_sheep.runs.fileio import folder_lock\nwith folder_lock({str(run)!r}):\n"
         "    print('locked', flush=True)\n    import time; time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(FolderInUse):
        _train(run, epochs=1)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    _train(run, epochs=1)  # the kernel released the lock of the killed process
    assert (run / ckpt.WEIGHTS).is_file()


def test_a_new_run_overwrites_no_config_json_it_did_not_write(tmp_path):
    """--out a folder that holds someone's config.json: refused, the file kept; the config.json of a
    run that stopped before its first checkpoint is the new run's to replace."""
    data = write_bitmap(tmp_path / "sheep.npy", n=40)
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"lr": 0.1}')
    res = CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--out", str(folder), "--quiet"])
    _one_line(res, str(folder / "config.json"), "is not a run's and would be overwritten")
    assert (folder / "config.json").read_text() == '{"lr": 0.1}' and not (folder / ckpt.WEIGHTS).exists()
    stopped = tmp_path / "stopped"
    _train(stopped, epochs=1)
    (stopped / ckpt.WEIGHTS).unlink()
    (stopped / ckpt.STATE).unlink()  # as if it had stopped before its first checkpoint
    res = CliRunner().invoke(main, ["train", str(data), "--epochs", "1", "--out", str(stopped), "--quiet"])
    assert res.exit_code == 0 and (stopped / ckpt.WEIGHTS).is_file(), res.output


def test_sigterm_stops_training_as_ctrl_c_does(tmp_path):
    """`kill`, `timeout` or a scheduler's preemption send SIGTERM: the run saves where it stopped
    and leaves no half-written file (Python's default had been to die on the spot)."""
    data = write_bitmap(tmp_path / "sheep.npy", n=600)
    run = tmp_path / "run"
    args = ["train", str(data), "--epochs", "1000", "--out", str(run)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "electric_sheep", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300
    while not (run / ckpt.METRICS).is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the first epoch saved: the next is under way
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err, err[-2000:]
    assert "Traceback" not in err and not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
    state = ckpt.load_training_state(run)
    epochs = len(ckpt.read_metrics(run))
    assert epochs >= 1 and (state.extra["step"] > 0) == ("interrupted: saved epoch" in err)
    res = CliRunner().invoke(main, ["train", "--resume", "--out", str(run), "--epochs", str(epochs + 1)])
    assert res.exit_code == 0 and len(ckpt.read_metrics(run)) == epochs + 1, res.output


class _Killed(BaseException):
    """A kill at one point of a save: nothing after it runs (not even `except Exception`)."""


SAVE_STEPS = ("save_training_state", "save_weights", "write_metrics")


@pytest.mark.parametrize("point", range(len(SAVE_STEPS)))
def test_a_kill_inside_a_checkpoint_save_resumes_to_the_same_run(tmp_path, monkeypatch, point):
    """The kill falls before the Nth file of epoch 2's checkpoint is written, leaving the files
    of epoch 1 and 2 mixed and a temporary file behind, as SIGKILL would."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _train(straight, epochs=3)
    calls = {"n": 0}
    kill_at = len(SAVE_STEPS) + point  # epoch 1's save runs whole

    def faulty(name):
        original = getattr(ckpt, name)

        def step(*args, **kwargs):
            if calls["n"] == kill_at:
                run_dir = next(a for a in args if isinstance(a, Path))
                (run_dir / f".{name}.half-written.tmp").write_bytes(b"\0" * 100)
                raise _Killed
            calls["n"] += 1
            return original(*args, **kwargs)

        return step

    with monkeypatch.context() as patch:
        for name in SAVE_STEPS:
            patch.setattr(ckpt, name, faulty(name))
        with pytest.raises(_Killed):
            _train(killed, epochs=3)
    _train(killed, epochs=3, resume=True)
    a, b = _weights(straight), _weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("epoch", "loss", "recon", "kl", "kl_weight", "val_loss"):
        assert [r[key] for r in ckpt.read_metrics(killed)] == [r[key] for r in ckpt.read_metrics(straight)]


class _CtrlCAtEpochEnd(Callback):
    """Ctrl-C while epoch 1 ends, after its metrics row is made: ``before`` the run's callbacks
    save it (as during the last epoch's temperature reading) or after they have."""

    def on_epoch_end(self, state, row):
        if state.epoch == 0:
            raise KeyboardInterrupt


@pytest.mark.parametrize("before_the_save", [True, False])
def test_ctrl_c_while_an_epoch_ends_resumes_to_the_same_run(tmp_path, monkeypatch, before_the_save):
    """An interrupt between an epoch's last step and the next epoch neither drops the epoch nor
    counts it twice: resumed, the run equals one never stopped."""
    from electric_sheep.runs import callbacks

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    _train(straight, epochs=3)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        if before_the_save:
            patch.setattr(callbacks.LatentSnapshots, "on_epoch_end", _CtrlCAtEpochEnd.on_epoch_end)
            _train(stopped, epochs=3)
        else:
            _train(stopped, epochs=3, callbacks=[_CtrlCAtEpochEnd()])
    assert len(ckpt.read_metrics(stopped)) == (0 if before_the_save else 1)
    _train(stopped, epochs=3, resume=True)
    a, b = _weights(straight), _weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)
    keys = ("epoch", "loss", "recon", "kl", "kl_weight", "val_loss")
    assert [[r[k] for k in keys] for r in ckpt.read_metrics(stopped)] == [
        [r[k] for k in keys] for r in ckpt.read_metrics(straight)
    ]


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT raises KeyboardInterrupt, as in a terminal, while the test runs: a shell that starts
    the tests in the background (`pytest &`) hands them SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("to_a_thread", [False, True])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.usefixtures("ctrl_c_interrupts")
def test_a_signal_during_an_optimiser_update_resumes_to_the_same_run(tmp_path, monkeypatch, sig, to_a_thread):
    """Ctrl-C or SIGTERM that lands just as the weights change, before the step is counted, is
    met after the step's bookkeeping: the checkpoint never holds weights one step ahead of its step.
    Also when the kernel hands the signal to another of the process's threads (a busy machine's
    torch workers): its handler still runs in the main thread, at once."""
    from electric_sheep.cli.common import _sigterm_as_interrupt

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    _train(straight, epochs=2)
    steps = {"n": 0}
    real_step = torch.optim.Adam.step
    other = threading.Thread(target=threading.Event().wait, args=(30,), daemon=True)
    other.start()

    def step_then_signal(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps["n"] += 1
        if steps["n"] == 9:  # mid-epoch 2 (6 steps an epoch)
            if to_a_thread:
                signal.pthread_kill(other.ident, sig)
                time.sleep(0.05)  # the other thread's handler has run: the main thread acts at its next instruction
            else:
                os.kill(os.getpid(), sig)
        return result

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        patch.setattr(torch.optim.Adam, "step", step_then_signal)
        _train(stopped, epochs=2)
    assert ckpt.load_training_state(stopped).extra["step"] == 3
    _train(stopped, epochs=2, resume=True)
    a, b = _weights(straight), _weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_ctrl_c_inside_a_steps_forward_pass_resumes_to_the_same_run(tmp_path, monkeypatch, preset):
    """Ctrl-C after a step has drawn its random numbers (flips, codes, context noise) and run its
    batch statistics (the seed's batch norm) but before it is counted: the checkpoint keeps the
    random state and running statistics of the last step counted, so the step runs again alike."""
    from electric_sheep.core import trainer

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    options = {"preset": preset, "batch_size": 16, **({"limit": 96} if preset == "seed" else {})}
    _train(straight, epochs=2, **options)
    calls = {"n": 0}
    real_forward = trainer._forward

    def forward_then_interrupt(*args, **kwargs):
        result = real_forward(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 9:  # mid-epoch 2 (6 steps an epoch)
            raise KeyboardInterrupt
        return result

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(trainer, "_forward", forward_then_interrupt)
        _train(stopped, epochs=2, **options)
    assert ckpt.load_training_state(stopped).extra["step"] == 2
    _train(stopped, epochs=2, resume=True, **options)
    a, b = _weights(straight), _weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _flip_tensor_bytes(path, count=2000):
    """Overwrite ``count`` bytes inside the tensor data (after the header), as disk damage would."""
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    middle = start + (len(raw) - start) // 2
    raw[middle : middle + count] = bytes(range(256)) * (count // 256) + bytes(count % 256)
    path.write_bytes(bytes(raw))


def test_damaged_weights_are_refused_not_drawn(tmp_path):
    data = write_bitmap(tmp_path / "sheep.npy", n=60)
    run = tmp_path / "run"
    train = ["train", str(data), "--epochs", "1", "--kl-schedule", "constant", "--out", str(run)]
    assert CliRunner().invoke(main, train).exit_code == 0
    _flip_tensor_bytes(run / ckpt.WEIGHTS)
    out = tmp_path / "sheep.png"
    _one_line(CliRunner().invoke(main, ["draw", str(run), "-o", str(out)]), "model.safetensors", "is damaged")
    _one_line(CliRunner().invoke(main, ["evaluate", str(run), "--k", "2"]), "is damaged")
    assert not out.exists() and not (run / "eval.json").exists()
    _flip_tensor_bytes(run / ckpt.STATE)
    resume = ["train", str(data), "--epochs", "2", "--out", str(run), "--resume"]
    _one_line(CliRunner().invoke(main, resume), "training_state.safetensors", "is damaged")


def test_run_files_that_are_a_device_or_a_folder_are_named_unread(tmp_path):
    _train(tmp_path, epochs=1)
    weights = tmp_path / ckpt.WEIGHTS
    weights.unlink()
    weights.symlink_to("/dev/zero")  # read to its end, this would never stop
    with pytest.raises(DataError, match="model.safetensors: is not a regular file"):
        ckpt.load_model(tmp_path)
    weights.unlink()
    weights.mkdir()
    with pytest.raises(DataError, match="model.safetensors: is not a regular file"):
        ckpt.load_model(tmp_path)
    (tmp_path / ckpt.STATE).unlink()
    (tmp_path / ckpt.STATE).symlink_to("/dev/zero")
    with pytest.raises(DataError, match="training_state.safetensors: is not a regular file"):
        ckpt.load_training_state(tmp_path)
    (tmp_path / ckpt.CONFIG).unlink()
    (tmp_path / ckpt.CONFIG).symlink_to("/dev/zero")
    with pytest.raises(DataError, match="config.json: is not a regular file"):
        ckpt.load_model(tmp_path)


def test_non_finite_weights_are_refused_even_with_a_good_checksum(tmp_path):
    _train(tmp_path, epochs=1)
    weights = load_file(str(tmp_path / ckpt.WEIGHTS))
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(tmp_path / ckpt.WEIGHTS), metadata={ckpt.CHECKSUM: ckpt.tensors_digest(weights)})
    with pytest.raises(DataError, match="non-finite numbers"):
        ckpt.load_model(tmp_path)


def test_the_builtin_model_carries_a_checksum_that_holds():
    from safetensors import safe_open

    with safe_open(str(ckpt.builtin_run_dir() / ckpt.WEIGHTS), framework="pt") as f:
        assert ckpt.CHECKSUM in f.metadata()
    ckpt.load_model(ckpt.builtin_run_dir())


def test_resume_recognises_its_data_by_content_not_path(tmp_path):
    first, moved, other = tmp_path / "a.npy", tmp_path / "moved.npy", tmp_path / "other.npy"
    write_bitmap(first, n=60)
    write_bitmap(other, n=60, seed=5)
    run = tmp_path / "run"
    r = CliRunner()
    assert r.invoke(main, ["train", str(first), "--epochs", "1", "--out", str(run)]).exit_code == 0
    assert "fingerprint" in json.loads((run / ckpt.CONFIG).read_text())["data"]
    result = r.invoke(main, ["train", "--epochs", "2", "--out", str(run), "--resume", "--quiet"])  # its own DATA
    assert result.exit_code == 0 and len(ckpt.read_metrics(run)) == 2, result.output
    shutil.move(first, moved)
    _one_line(r.invoke(main, ["train", "--epochs", "3", "--out", str(run), "--resume"]), f"{first}: no such file")
    _one_line(r.invoke(main, ["train", str(other), "--epochs", "3", "--out", str(run), "--resume"]), "other data")
    result = r.invoke(main, ["train", str(moved), "--epochs", "3", "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert len(ckpt.read_metrics(run)) == 3
    result = r.invoke(main, ["train", "--epochs", "3", "--out", str(tmp_path / "new")])
    assert result.exit_code == 2 and "only --resume may leave it out" in result.output
    with pytest.raises(ConfigError, match="no DATA to train on"):  # the library says so too
        train_on_data([], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_training_reads_only_the_validation_drawings_it_uses(tmp_path, monkeypatch):
    from electric_sheep.data.drawings import Drawings
    from electric_sheep.data.sources import DrawingSet
    from electric_sheep.runs.train_data import train_on_data

    data = tmp_path / "big.npy"
    np.save(data, np.zeros((30_000, 784), np.uint8))  # a valid split of 3,000 drawings
    read = []
    original_split, original_take = Drawings.split, DrawingSet.take

    def spy_split(self, name, limit=None):
        images = original_split(self, name, limit)
        read.append(len(images))
        return images

    def spy_take(self, idx):
        images = original_take(self, idx)
        read.append(len(images))
        return images

    monkeypatch.setattr(Drawings, "split", spy_split)
    monkeypatch.setattr(DrawingSet, "take", spy_take)
    given = []
    # The reading is what is measured, not the training.
    monkeypatch.setattr("electric_sheep.runs.train_data.train", lambda *a, **k: given.append(a) or [])
    train_on_data(data, tmp_path / "run", limit=64, epochs=1, progress=False, log=lambda s: None)
    assert read == [2000] and len(given[0][1]) == 2000  # the validation drawings; batches read the training ones
    train_set = given[0][0]
    assert isinstance(train_set, DrawingSet) and len(train_set) == 64
    assert isinstance(train_set.parts[0][0], np.memmap)


def test_training_runs_on_one_thread_by_default_and_restores_torch(tmp_path):
    """torch's threads and numpy's BLAS pools (the prior's Gaussian mixtures run on them) alike."""
    from threadpoolctl import threadpool_info

    def blas() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before, blas_before = torch.get_num_threads(), blas()
    seen, seen_blas = [], []

    def on_step(epoch: int, step: int) -> None:
        seen.append(torch.get_num_threads())
        seen_blas.append(blas())

    _train(tmp_path / "a", epochs=1, on_step=on_step)
    assert set(seen) == {1} and torch.get_num_threads() == before
    assert all(pools == {1} for pools in seen_blas) and blas() == blas_before
    _train(tmp_path / "b", epochs=1, threads=0, on_step=lambda e, s: seen.append(torch.get_num_threads()))
    assert seen[-1] == before
    assert json.loads((tmp_path / "a" / ckpt.CONFIG).read_text())["train"]["threads"] == 1


def test_non_finite_results_are_an_error_not_an_eval_json(tmp_path, monkeypatch):
    import electric_sheep.analysis.evaluate as evaluate

    data = write_bitmap(tmp_path / "sheep.npy", n=60)
    _train(tmp_path / "run", epochs=1)
    nan = {"nelbo": float("nan"), "iwae_nll": float("nan"), "mse": 0.1, "kl": 1.0, "k": 2, "n": 6}
    monkeypatch.setattr(evaluate, "evaluate_model", lambda *a, **k: dict(nan))
    with pytest.raises(Exception, match="non-finite results"):
        evaluate.evaluate_run(tmp_path / "run", data, k=2)
    assert not (tmp_path / "run" / "eval.json").exists()
