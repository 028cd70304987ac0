"""Training: annealing, checkpoints, exact resume, NaN stop, TensorBoard, DDP, evaluation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from electric_sheep.analysis.evaluate import evaluate_model
from electric_sheep.cli import main
from electric_sheep.core import train_config as train_mod
from electric_sheep.core.devices import seed_process
from electric_sheep.core.model import ModelConfig, build_model, make_model_config
from electric_sheep.core.train_config import (
    TrainConfig,
    kl_shortfall_warning,
    kl_weight,
    make_train_config,
)
from electric_sheep.core.trainer import Callback, OnStep, fit
from electric_sheep.errors import ConfigError, SheepWarning, TrainingDiverged
from electric_sheep.render.plots import grid_image
from electric_sheep.runs import checkpoint as ckpt
from electric_sheep.runs.train_data import resume_train_config
from electric_sheep.runs.training import train


def blobs(n: int, seed: int = 0) -> np.ndarray:
    """Tiny drawings: rectangles of random size and place, as uint8 (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        x0, y0 = rng.integers(2, 12, 2)
        x1, y1 = x0 + rng.integers(6, 14), y0 + rng.integers(6, 14)
        out[i, y0:y1, x0] = out[i, y0:y1, x1] = out[i, y0, x0:x1] = out[i, y1, x0 : x1 + 1] = 255
    return out


FAST = dict(batch_size=16, val_limit=32, lr=1e-3)


def _train(run_dir, epochs=2, resume=False, on_step=None, preset="default", callbacks=(), **kw):
    cfg = make_train_config(preset, epochs=epochs, **{**FAST, **kw})
    return train(
        blobs(96),
        blobs(32, seed=1),
        ModelConfig(preset=preset),
        cfg,
        run_dir,
        resume=resume,
        progress=False,
        log=lambda s: None,
        callbacks=[*callbacks, *([OnStep(on_step)] if on_step else [])],
    )


def _weights(run_dir):
    return load_file(str(run_dir / ckpt.WEIGHTS))


def test_post_annealing_schedule_values():
    cfg = make_train_config("seed")  # 30 epochs, kl_start 10, kl_steep 10
    w = [kl_weight(cfg, e) for e in range(30)]
    assert w[:12] == [0.0] * 12  # 0 through the 12th epoch
    assert w[12] == pytest.approx(0.1)  # 0.1 in the 13th
    assert w[20] == pytest.approx(0.9) and w[21:] == [1.0] * 9  # 1 from the 22nd


def test_other_schedules():
    lin = TrainConfig(kl_schedule="linear", kl_start=1, kl_steep=2, epochs=4)
    assert kl_weight(lin, 0, 5, 10) == 0.0
    assert kl_weight(lin, 2, 0, 10) == pytest.approx(0.5) and kl_weight(lin, 2, 5, 10) == pytest.approx(0.75)
    assert kl_weight(lin, 3, 5, 10) == 1.0
    cyc = TrainConfig(kl_schedule="cyclical", kl_cycles=2, epochs=4)  # 2 cycles of 20 steps, 10 steps each
    assert [kl_weight(cyc, 0, s, 10) for s in (0, 5)] == [0.0, 0.5]
    assert kl_weight(cyc, 1, 5, 10) == 1.0 and kl_weight(cyc, 2, 0, 10) == 0.0
    assert kl_weight(TrainConfig(kl_schedule="constant"), 0) == 1.0


def test_a_run_too_short_for_the_kl_weight_to_reach_1_is_warned_about(tmp_path):
    """A 3-epoch trial never turns the KL on (it rises after epoch 2): sampled drawings would be noise."""
    assert kl_shortfall_warning(make_train_config("default")) is None  # 20 epochs: 1 from the 9th
    assert kl_shortfall_warning(make_train_config("seed")) is None  # the post's 30 epochs reach 1
    assert "only reaches 0.80 (of 1) by the last of 20" in kl_shortfall_warning(make_train_config("seed", epochs=20))
    assert "only reaches 0.00" in kl_shortfall_warning(make_train_config("default", epochs=3))
    with pytest.warns(SheepWarning, match="only reaches 0.00"):
        _train(tmp_path / "short", epochs=1)


def test_unknown_training_options_rejected():
    with pytest.raises(ConfigError, match="unknown training option"):
        make_train_config("default", epoch=3)


def test_settings_take_numbers_of_the_right_kind_from_python_or_numpy():
    """A string or a fraction where a count goes is named; a numpy number (drawn by a script) is
    the Python number it holds, which config.json can store."""
    with pytest.raises(ConfigError, match='epochs must be a whole number, got "3"'):
        make_train_config("default", epochs="3")
    with pytest.raises(ConfigError, match="lr must be a finite number, got NaN"):
        make_train_config("default", lr=float("nan"))
    with pytest.raises(ConfigError, match="optimizer must be one of 'adam', 'rmsprop'"):
        make_train_config("default", optimizer="sgd")
    cfg = make_train_config("default", epochs=np.int64(3), lr=np.float32(0.5), seed=np.uint32(7), flip=np.bool_(False))
    assert json.loads(json.dumps(cfg.to_dict()))["epochs"] == 3 and type(cfg.seed) is int and cfg.flip is False
    assert type(ModelConfig(latent_dim=np.int64(4)).latent_dim) is int


def test_run_folder_round_trip_and_tensorboard(tmp_path):
    history = _train(tmp_path, epochs=2)
    assert [row["epoch"] for row in history] == [1, 2]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for key in ("epoch", "loss", "recon", "kl", "kl_weight", "val_loss", "images_per_s"):
        assert key in lines[-1]
    assert (tmp_path / "latents" / "epoch_002.npy").is_file()
    model = ckpt.load_model(tmp_path)
    state = _weights(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["preset"] == "default" and config["train"]["epochs"] == 2

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss/loss", "loss/recon", "loss/kl", "loss/val_loss", "kl_weight"):
        assert tag in tags["scalars"]
    assert [e.step for e in acc.Scalars("loss/loss")] == [1, 2]
    assert acc.Scalars("loss/loss")[-1].value == pytest.approx(history[-1]["loss"], rel=1e-5)
    assert {"reconstructions", "samples", "latent_space"} <= set(tags["images"])


def test_tensorboard_plots_the_codes_plane_and_survives_a_code_that_is_not_finite(monkeypatch):
    """TensorBoard's latent_space shows 16-D codes on their first two principal components, as every
    scatter does; a non-finite code (a run going astray) is left out, not a crash of the training."""
    import matplotlib.pyplot as plt

    from electric_sheep.runs import callbacks

    model = build_model(make_model_config("default"))
    assert model.config.latent_dim > 2
    codes = np.random.default_rng(0).normal(size=(32, model.config.latent_dim)).astype(np.float32)
    codes[5] = np.nan
    monkeypatch.setattr(callbacks, "encode_means", lambda m, x: codes)
    figures = {}

    class Writer:
        def add_scalar(self, *a): ...
        def add_image(self, *a, **k): ...
        def flush(self): ...
        def add_figure(self, tag, fig, step):
            figures[tag] = fig

    row = {"epoch": 1, "loss": 1.0, "kl_weight": 0.0, "images_per_s": 1.0}
    callbacks._log_epoch(Writer(), model, torch.from_numpy(blobs(32)), row)
    fig = figures["latent_space"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "first principal component" and len(ax.collections[0].get_offsets()) == 31
    plt.close(fig)  # what the real writer does with it


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    straight, resumed, interrupted = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _train(straight, epochs=3)
    _train(resumed, epochs=1)
    _train(resumed, epochs=3, resume=True)

    def ctrl_c(epoch, step):
        if epoch == 1 and step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(interrupted, epochs=3, on_step=ctrl_c)
    assert ckpt.load_training_state(interrupted).extra["step"] == 3  # steps 0-2 of epoch 2 were done
    _train(interrupted, epochs=3, resume=True)
    a = _weights(straight)
    for other in (resumed, interrupted):
        b = _weights(other)
        assert all(torch.equal(a[k], b[k]) for k in a), other.name
        for key in ("loss", "recon", "kl", "kl_weight", "val_loss"):
            assert [r[key] for r in ckpt.read_metrics(other)] == [r[key] for r in ckpt.read_metrics(straight)]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _train(tmp_path, epochs=1)
    good = _weights(tmp_path)

    class Diverge(Callback):  # corrupt the weights as a diverging optimiser would
        def on_step(self, state):
            if state.epoch == 1 and state.step == 2:
                with torch.no_grad():
                    for p in state.model.parameters():
                        p.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*last good checkpoint.*epoch 1"):
        _train(tmp_path, epochs=3, resume=True, callbacks=[Diverge()])
    after = _weights(tmp_path)
    assert all(torch.equal(good[k], after[k]) for k in good)
    assert len(ckpt.read_metrics(tmp_path)) == 1


def test_divergence_is_reported_on_a_line_of_its_own(shared, tmp_path):
    """The epoch's progress bar is closed before the error is printed: it used to run on after the
    bar's last state, on the same line."""
    data = shared / "quickdraw" / "bitmap" / "sheep.npy"
    args = ["train", str(data), "--epochs", "1", "--limit", "200", "--lr", "1e6", "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "error: loss became nan" in res.output, res.output
    before = res.output.split("error: loss became nan")[0]
    assert before == "" or before[-1] in "\r\n", before[-80:]


def test_seed_preset_trains_and_evaluates(tmp_path):
    history = _train(tmp_path, epochs=1, preset="seed", batch_size=8, limit=48)
    assert np.isfinite(history[0]["loss"])
    result = evaluate_model(ckpt.load_model(tmp_path), blobs(12, seed=2), k=20)
    assert result["iwae_nll"] <= result["nelbo"] + 1e-6  # Jensen, on the same samples
    assert result["n"] == 12 and result["k"] == 20 and result["kl"] >= 0
    draw = ["draw", str(tmp_path), "-n", "2", "-o", str(tmp_path / "x.png")]
    res = CliRunner().invoke(main, [*draw, "--candidates", "4"])  # no pixel head: nothing to choose from
    assert res.exit_code == 0 and "has no pixel head to sample: --candidates changes nothing" in res.stderr
    res = CliRunner().invoke(main, [*draw, "--category", "cat"])
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        "error: the model cannot draw 'cat': it has no categories"
    ]


def test_evaluation_memory_does_not_grow_with_k(monkeypatch):
    """The k importance samples are decoded a chunk at a time (here 16 decodes for k = 50: one
    drawing at a time, in chunks of 16, 16, 16 and 2); the bounds combine the chunks exactly (the
    mean of the log-weights, the log of the mean weight)."""
    from electric_sheep.analysis import evaluate

    k, n, chunk = 50, 3, 16
    weights = torch.randn(n, k, dtype=torch.float64) * 30 - 200  # what each drawing's samples weigh, in order
    calls = []

    def log_weights(model, x_bin, mean, std, count, gen, y=None):
        drawn = sum(c for _, c in calls)
        calls.append((len(mean), count))
        row, col = divmod(drawn, k)
        return weights[row : row + 1, col : col + count]

    monkeypatch.setattr(evaluate, "DECODES_PER_CHUNK", chunk)
    monkeypatch.setattr(evaluate, "_log_weights", log_weights)
    result = evaluate.evaluate_model(ckpt.load_model(ckpt.builtin_run_dir()), blobs(n, seed=2), k=k)
    assert calls == [(1, 16), (1, 16), (1, 16), (1, 2)] * n
    assert result["nelbo"] == pytest.approx(-float(weights.mean(dim=1).mean()))
    assert result["iwae_nll"] == pytest.approx(-float((torch.logsumexp(weights, dim=1) - np.log(k)).mean()))


def test_a_likelihood_of_many_codes_is_decoded_a_few_codes_at_a_time(monkeypatch):
    """k codes of each drawing are decoded LIKELIHOOD_ROWS at a time (4,096 at once had the pixel
    head's activations mapped afresh by the kernel on every pass: a third of evaluation's time), to
    the same likelihoods as all at once."""
    from electric_sheep.core import model as model_mod

    model, images = ckpt.load_model(ckpt.builtin_run_dir()), blobs(3, seed=6)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    z = torch.randn((10, 3, model.config.latent_dim), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        at_once = model.log_likelihood(z, x)  # 30 rows, under the limit: one pass
        rows = []
        monkeypatch.setattr(
            model,
            "likelihood_logits",
            lambda z, *a: rows.append(len(z)) or model_mod.VAE.likelihood_logits(model, z, *a),
        )
        monkeypatch.setattr(model_mod, "LIKELIHOOD_ROWS", 7)  # two codes of each of the three drawings a pass
        chunked = model.log_likelihood(z, x)
        one = model.log_likelihood(z[0], x)  # (B, D) codes: one each
    assert rows == [6] * 5 + [3] and chunked.shape == (10, 3)
    torch.testing.assert_close(chunked, at_once, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(one, at_once[0], rtol=1e-6, atol=1e-4)


def test_evaluation_stays_float32_where_drawing_would_use_bf16(monkeypatch):
    """Runs and machines are compared by their NLL: bf16 inference would move it by whole nats."""
    from electric_sheep.core import infer

    model, images = ckpt.load_model(ckpt.builtin_run_dir()), blobs(6, seed=3)
    plain = evaluate_model(model, images, k=8)
    monkeypatch.setattr(infer, "bf16_supported", lambda device: True)
    assert evaluate_model(model, images, k=8) == plain
    with infer.fast_inference(model):  # where drawing and scoring would go bf16, here emulated
        encoded = model.encode(infer.as_batch(torch.from_numpy(images)))[0]
    assert encoded.dtype == torch.bfloat16


def test_evaluation_reconstructs_each_drawing_alike_whatever_k():
    """The MSE decodes each drawing with pixel noise of its own: it does not depend on how many
    drawings share a batch of importance samples (k = 1,000 takes four at a time, k = 1 all)."""
    model, images = ckpt.load_model(ckpt.builtin_run_dir()), blobs(6, seed=4)
    assert evaluate_model(model, images, k=1000)["mse"] == evaluate_model(model, images, k=1)["mse"]


def test_cli_train_and_evaluate_json(tmp_path):
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(120).reshape(120, 784))
    run = tmp_path / "run"
    r = CliRunner().invoke(
        main, ["train", str(data), "--epochs", "2", "--batch-size", "16", "--out", str(run), "--quiet"]
    )
    assert r.exit_code == 0, r.output
    assert "epoch   2/2" in r.output and "img/s" in r.output
    # every term of the loss is shown: the default preset's renderer adds its own
    line = next(row for row in r.output.splitlines() if row.startswith("epoch   2/2"))
    values = dict(zip(*[iter(line.split()[2:12])] * 2, strict=True))
    loss, recon, kl, w, render = (float(values[k]) for k in ("loss", "recon", "kl", "kl_w", "render"))
    assert loss == pytest.approx(recon + w * kl + render, abs=0.02)
    assert f"next: sheep draw {run}; sheep report {run} -o report.html" in r.output
    # 2 epochs at the default schedule never turn the KL on: one line on stderr, not a Python warning
    assert r.stderr.count("warning: the KL weight only reaches 0.00") == 1 and "SheepWarning" not in r.stderr
    # Codes from N(0, I) need the KL at full weight; the prior fitted to the codes does not, and the
    # built-in model's KL reached 1.
    cases = [([str(run), "--std", "1"], True), ([str(run)], False), ([], False), (["--std", "1"], False)]
    for args, warned in cases:
        r = CliRunner().invoke(main, ["draw", *args, "-n", "4", "-o", str(tmp_path / "drawn.png")])
        assert r.exit_code == 0 and ("ended training with a KL weight of 0.00" in r.stderr) is warned, r.output
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "10", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert {"nelbo", "iwae_nll", "mse", "kl", "k", "n"} <= set(result) and result["n"] == result["split_size"] == 12
    assert json.loads((run / "eval.json").read_text())["iwae_nll"] == result["iwae_nll"]
    # At most 10,000 drawings unless told (a split of millions took hours); --limit 0: all of them.
    r = CliRunner().invoke(main, ["evaluate", "--help"])
    assert "[default: 10000; x>=0]" in r.output and "0: all of them" in " ".join(r.output.split())
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "10", "--limit", "5"])
    assert r.exit_code == 0 and "preset on the first 5 of 12 test drawings of" in r.output, r.output
    r = CliRunner().invoke(main, ["evaluate", str(run), "--k", "10", "--limit", "0", "--json"])
    assert json.loads(r.output)["n"] == 12
    r = CliRunner().invoke(main, ["train", str(data), "--out", str(run), "--quiet"])
    assert r.exit_code == 2 and "already holds a run" in r.output
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert r.exit_code == 2 and "not a run folder" in r.output


def test_cli_train_with_other_channels_and_hidden(tmp_path):
    """--channels and --hidden size the default preset: saved in config.json, rebuilt by load_model;
    a malformed value or the seed preset is refused before a run folder is made."""
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(120).reshape(120, 784))
    run = tmp_path / "narrow"
    r = CliRunner()
    args = ["train", str(data), "--epochs", "1", "--batch-size", "16", "--quiet"]
    shape = ["--channels", "16,32", "--hidden", "64", "--pixel-context", "7"]
    res = r.invoke(main, [*args, *shape, "--out", str(run)])
    assert res.exit_code == 0, res.output
    saved = json.loads((run / "config.json").read_text())["model"]
    assert (saved["channels"], saved["hidden"], saved["pixel_context"]) == ([16, 32], 64, 7)
    model = ckpt.load_model(run)
    assert (model.encoder[0].out_channels, model.encoder[2].out_channels, model.encoder[5].out_features) == (16, 32, 64)
    z = torch.zeros(2, model.config.latent_dim)
    assert model.decoder[-1].in_channels == 16 and model.decode(z).shape == (2, 1, 28, 28)
    assert model.pixel_head.context.kernel_size == (7, 7)
    bad = ["--out", str(tmp_path / "bad")]
    for value in ("16", "16,x", "0,32", "16,32,64"):
        res = r.invoke(main, [*args, "--channels", value, *bad])
        assert res.exit_code == 2 and "--channels" in res.output, (value, res.output)
    res = r.invoke(main, [*args, "--hidden", "0", *bad])
    assert res.exit_code == 2 and "--hidden" in res.output, res.output
    res = r.invoke(main, [*args, "--pixel-context", "8", *bad])
    assert res.exit_code == 2 and "pixel_context must be odd" in res.output, res.output
    for option, value in (("--channels", "16,32"), ("--hidden", "64"), ("--pixel-head", "4"), ("--pixel-context", "7")):
        res = r.invoke(main, [*args, "--preset", "seed", option, value, *bad])
        assert res.exit_code == 2 and "the seed preset keeps the post's" in res.output, res.output
    assert not (tmp_path / "bad").exists()


def test_cli_train_without_pixel_head_and_flips(tmp_path):
    """--pixel-head 0 trains the independent-pixel decoder (still with the fitted prior); --no-flip
    is saved with the run; the default run has both, and a 16-D latent."""
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(120).reshape(120, 784))
    args = ["train", str(data), "--epochs", "1", "--batch-size", "16", "--quiet"]
    for extra, head, flip in (([], 16, True), (["--pixel-head", "0", "--no-flip"], 0, False)):
        run = tmp_path / f"run{head}"
        res = CliRunner().invoke(main, [*args, *extra, "--out", str(run)])
        assert res.exit_code == 0, res.output
        saved = json.loads((run / "config.json").read_text())
        assert (saved["model"]["pixel_head"], saved["train"]["flip"], saved["model"]["latent_dim"]) == (head, flip, 16)
        model = ckpt.load_model(run)
        assert (model.pixel_head is None) == (head == 0) and model.prior is not None
        assert float(model.prior.weights.sum()) == pytest.approx(1.0)


def test_resume_keeps_the_runs_own_settings(tmp_path):
    """--resume goes on with the run's --lr, --kl-start and --seed, not the preset's defaults, and
    refuses a preset, latent size, channels or width that contradict the run (before touching anything)."""
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(120).reshape(120, 784))
    run = tmp_path / "run"
    r = CliRunner()
    first = ["train", str(data), "--out", str(run), "--quiet", "--batch-size", "16"]
    res = r.invoke(main, [*first, "--epochs", "1", "--lr", "1e-4", "--kl-start", "0", "--seed", "3", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert resume_train_config(run).device is None  # the device belongs to the machine, not the run
    res = r.invoke(main, ["train", str(data), "--out", str(run), "--quiet", "--resume", "--epochs", "2"])
    assert res.exit_code == 0 and "epoch   2/2" in res.output, res.output
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["epochs"], saved["lr"], saved["kl_start"], saved["seed"], saved["batch_size"]) == (2, 1e-4, 0, 3, 16)
    config = (run / "config.json").read_text()
    for option, value in (("--preset", "seed"), ("--latent-dim", "3"), ("--channels", "16,32"), ("--hidden", "64")):
        res = r.invoke(main, ["train", str(data), "--out", str(run), "--resume", "--epochs", "3", option, value])
        assert res.exit_code == 2 and "--resume keeps it" in res.output, res.output
    other = tmp_path / "other.npy"
    np.save(other, blobs(60, seed=5).reshape(60, 784))
    res = r.invoke(main, ["train", str(other), "--out", str(run), "--resume", "--epochs", "3"])
    assert res.exit_code == 2 and "resume it with the same DATA" in res.output, res.output
    assert (run / "config.json").read_text() == config
    res = r.invoke(main, ["train", str(data), "--out", str(run), "--quiet", "--resume", "--epochs", "2"])
    assert res.exit_code == 0 and "already trained 2 epochs: nothing to do" in res.output, res.output


def test_evaluating_the_builtin_model_leaves_its_files_alone(tmp_path, monkeypatch):
    """The package's eval.json is the model card's figure; the user's evaluation goes to ./sheep-analysis."""
    shipped = ckpt.builtin_run_dir() / "eval.json"
    before = shipped.read_bytes()
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(60).reshape(60, 784))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["evaluate", str(data), "--k", "2", "--split", "valid"])
    assert r.exit_code == 0, r.output
    assert "wrote sheep-analysis/eval.json" in r.output and shipped.read_bytes() == before
    assert json.loads((tmp_path / "sheep-analysis" / "eval.json").read_text())["n"] == 6


def _torchrun_train(data, run, *options):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    train_args = ["train", str(data), "--batch-size", "16", "--out", str(run), "--quiet", "--device", "cpu"]
    proc = subprocess.run(
        [*cmd, "-m", "electric_sheep", *train_args, *options], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_ddp_with_two_cpu_processes(tmp_path):
    """Two processes train one run; resumed after its first epoch, it ends with the weights of the
    run never stopped (each process seeds every step from the seed, its rank, the epoch and step)."""
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(160).reshape(160, 784))
    run = tmp_path / "ddp"
    proc = _torchrun_train(data, run, "--epochs", "2")
    history = ckpt.read_metrics(run)
    assert [r["epoch"] for r in history] == [1, 2]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # only rank 0 writes
    assert proc.stdout.count("epoch   2/2") == 1 and "Grad strides" not in proc.stderr  # nothing to act on
    model = ckpt.load_model(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    resumed = tmp_path / "resumed"
    _torchrun_train(data, resumed, "--epochs", "1")
    _torchrun_train(data, resumed, "--epochs", "2", "--resume")
    a, b = _weights(run), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_command_speaks_json_for_scripts(tmp_path):
    """train, show and download have --json too: stdout is one JSON object (or list), nothing else."""
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(60).reshape(60, 784))
    r = CliRunner()
    res = r.invoke(
        main, ["train", str(data), "--epochs", "2", "--batch-size", "16", "--out", str(tmp_path / "run"), "--json"]
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["epochs"] == 2 and [row["epoch"] for row in result["history"]] == [1, 2]
    assert result["history"][-1]["val_loss"] > 0 and result["run_dir"] == str(tmp_path / "run")
    res = r.invoke(main, ["show", str(data), "-n", "4", "-o", str(tmp_path / "g.png"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == {
        "image": str(tmp_path / "g.png"), "n": 4, "split": "all", "data": str(data)
    }  # fmt: skip
    first = np.asarray(grid_image(blobs(60)[:4]))  # the file's first four, in its order (not the train split's)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), first)
    res = r.invoke(main, ["download", "--list", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)) == 345
    without = [name for name, c in main.commands.items() if not any("--json" in p.opts for p in c.params)]
    assert without == [], f"commands without --json: {without}"


def test_gpu_batches_scale_the_learning_rate_and_keep_steps_per_epoch():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    cfg = make_train_config("default")
    big = train_mod.for_device(cfg, cuda, 1_000_000)
    assert (big.batch_size, big.gpu_batch_size) == (cfg.gpu_batch_size, 0)
    assert big.lr == pytest.approx(cfg.lr * (cfg.gpu_batch_size / cfg.batch_size) ** 0.5)
    assert train_mod.for_device(big, cuda, 1_000_000) == big  # what config.json records, resumed
    small = train_mod.for_device(cfg, cuda, 7_400)  # the Aaron sheep: still >= 100 steps an epoch
    assert small.batch_size == 74 and train_mod.steps_per_epoch(7_400, small.batch_size) >= 100
    assert train_mod.for_device(cfg, cpu, 1_000_000) == cfg
    seed = make_train_config("seed")
    assert train_mod.for_device(seed, cuda, 1_000_000) == seed  # the post's batch of 8, as written
    asked = make_train_config("default", batch_size=64)
    assert train_mod.for_device(asked, cuda, 1_000_000).batch_size == 64  # a batch size asked for is kept


def test_the_command_line_offers_every_registered_preset_and_schedule():
    from electric_sheep.core.presets import PRESET_MODEL, PRESET_TRAINING
    from electric_sheep.core.schedules import SCHEDULES

    options = {p.name: p for p in main.commands["train"].params}
    assert list(options["preset"].type.choices) == list(PRESET_MODEL) == list(PRESET_TRAINING)
    assert list(options["kl_schedule"].type.choices) == list(SCHEDULES)
    for name in SCHEDULES:  # each passes the training settings' validation and gives a weight in [0, 1]
        cfg = make_train_config("default", kl_schedule=name)
        assert all(0.0 <= kl_weight(cfg, epoch, 0, 10) <= 1.0 for epoch in range(cfg.epochs))


def test_fit_trains_in_memory_and_returns_the_model(tmp_path, monkeypatch):
    """The loop needs no run folder: no file is written, the model comes back trained, and a
    callback sees every step and epoch."""
    monkeypatch.chdir(tmp_path)
    seed_process(0)
    model = build_model(ModelConfig())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = {"steps": 0, "rows": []}

    class Count(Callback):
        def on_step(self, state):
            seen["steps"] += 1

        def on_epoch_end(self, state, row):
            seen["rows"].append(row)

    cfg = make_train_config("default", epochs=2, **FAST)
    trained = fit(model, blobs(96), blobs(32, seed=1), cfg, [Count()])
    assert trained is model and list(tmp_path.iterdir()) == []
    assert seen["steps"] == 2 * train_mod.steps_per_epoch(96, cfg.batch_size) and [
        r["epoch"] for r in seen["rows"]
    ] == [1, 2]
    assert seen["rows"][1]["val_loss"] < seen["rows"][0]["val_loss"]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
