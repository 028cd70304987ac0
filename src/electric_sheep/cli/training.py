"""Commands that train and evaluate: train, evaluate."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..core.presets import PRESET_MODEL
from ..core.schedules import SCHEDULES
from ..data import drawings as data_mod
from ..runs.fileio import json_text
from ..wording import counted, listed
from .common import (
    SEED,
    _category_option,
    _channels,
    _default_out,
    _device,
    _device_option,
    _finish,
    _Finite,
    _run_and_data,
    _run_and_data_args,
    echo,
    main,
)


@main.command()
@click.argument("data", nargs=-1)
@click.option(
    "--preset",
    type=click.Choice(list(PRESET_MODEL)),
    default=None,
    help="Default: default (with --resume: the run's).",
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help="Default: 20, or more on a small set, enough for 2,000 steps (seed preset: 30).",
)
@click.option(
    "--latent-dim",
    type=click.IntRange(1),
    default=None,
    help="Default: the preset's, 16 (seed: 2); with --resume: the run's.",
)
@click.option(
    "--pixel-head",
    type=click.IntRange(0),
    default=None,
    help="Default preset: channels of the head that draws each pixel given the ones before it "
    "(default 16); 0: pixels independent given z, drawn grey where the model is unsure.",
)
@click.option(
    "--pixel-context",
    type=click.IntRange(3, 27),
    default=None,
    help="Default preset: side of the window of drawn pixels the head sees, odd "
    f"(default {PRESET_MODEL['default']['pixel_context']}).",
)
@click.option(
    "--channels",
    callback=_channels,
    default=None,
    metavar="C1,C2",
    help="Default preset: filters of its two strided convs. Default 8,24; 32,64 (with --hidden 256) models "
    "the drawings a little better and scores several times slower on a CPU (docs/performance.md).",
)
@click.option(
    "--hidden",
    type=click.IntRange(1),
    default=None,
    help="Default preset: width of its dense layer between convs and latent. Default 128.",
)
@click.option("--kl-start", type=click.IntRange(0), default=None, help="Epoch after which the KL weight rises.")
@click.option("--kl-steep", type=click.IntRange(0), default=None, help="Epochs over which it rises to 1.")
@click.option(
    "--kl-schedule",
    type=click.Choice(list(SCHEDULES)),
    default=None,
    help="; ".join(f"{name}: {schedule.purpose}" for name, schedule in SCHEDULES.items()) + ".",
)
@click.option(
    "--free-bits", type=_Finite(0), default=None, help="Minimum KL in nats per latent dim. Default 1 (seed: 0)."
)
@click.option(
    "--context-noise",
    type=click.FloatRange(0, 0.5, max_open=True),
    default=None,
    help="Share of the pixel head's context flipped at random while training, so that it draws "
    "whole shapes rather than trailing its own stray pixels. Default 0.2 (seed: no pixel head).",
)
@click.option(
    "--flip/--no-flip",
    default=None,
    help="Mirror drawings left to right at random while training. Default on (seed: off); "
    "turn it off for writing, where a mirrored letter is another letter.",
)
@click.option("--batch-size", type=click.IntRange(2), default=None, help="Per process. Default 32 (seed: 8).")
@click.option("--lr", type=_Finite(0, min_open=True), default=None)
@click.option(
    "--limit", type=click.IntRange(2), default=None, help="Train on the first N drawings of the split (of each file)."
)
@click.option(
    "--balance/--no-balance",
    default=None,
    help="Several files: draw every category equally often, whatever its size. Default off.",
)
@click.option(
    "--conditional",
    is_flag=True,
    help="Several files: one class-conditional model, each file a category (`sheep draw --category`).",
)
@click.option("--seed", type=SEED, default=None, help="Default: 0 (with --resume: the run's).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
@click.option(
    "--threads",
    type=click.IntRange(0),
    default=None,
    help="CPU threads while training (torch's and numpy's). Default 1, which keeps its speed on a busy machine; "
    "0: all cores (faster on an idle machine). With --resume: the run's.",
)
@click.option(
    "--out", "run_dir", type=click.Path(path_type=Path), default=None, help="Run folder (default runs/<preset>)."
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --out from its last checkpoint, with its own settings."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--json", "as_json", is_flag=True, help="At the end, print the run folder and each epoch's metrics as JSON."
)
def train(data: tuple[str, ...], run_dir, resume: bool, quiet: bool, as_json: bool, **settings) -> None:
    """Train a VAE on DATA; checkpoints, metrics and TensorBoard logs go to the run folder.

    DATA: one file or category, or several (`sheep train sheep cat dog`, paths, or a pattern such
    as 'data/*.npy'): they train as one set, read from disk as batches need them. With --resume
    DATA may be left out: the run goes on with the files it recorded."""
    from ..core.devices import is_main_process
    from ..runs.train_data import train_on_data

    if not data and not resume:
        raise click.UsageError("Missing argument 'DATA...' (only --resume may leave it out).")
    run_dir = run_dir or Path("runs") / (settings["preset"] or "default")
    # every other option is a model or TrainConfig setting of the same name
    progress, log = not (quiet or as_json), (lambda line: None) if as_json else echo
    history = train_on_data(list(data), run_dir, resume=resume, progress=progress, log=log, **settings)
    if is_main_process():
        result = {"run_dir": str(run_dir), "epochs": len(history), "history": history}
        quoted = shlex.quote(str(run_dir))  # the hints below can be pasted into a shell
        lines = [
            f"run saved in {run_dir} (tensorboard --logdir {quoted})",
            f"next: sheep draw {quoted}; sheep report {quoted} -o report.html",
        ]
        _finish(result, as_json, lines)


# Drawings `sheep evaluate` reads unless told: per-drawing NLLs spread by 30-40 nats, so the mean of
# 10,000 is within about 0.3 nats (a standard error) of a whole split's, which for a file of millions
# would take hours at k = 1000.
EVALUATED = 10_000


@main.command()
@_run_and_data_args
@click.option("--k", type=click.IntRange(1), default=1000, show_default=True, help="Importance samples (IWAE).")
@click.option("--split", type=click.Choice(data_mod.SPLITS), default="test", show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=EVALUATED,
    show_default=True,
    help="Evaluate the split's first N drawings only; 0: all of them.",
)
@_category_option("is told the drawings are (default: the one it learned from DATA, if any)")
@_device_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object only.")
def evaluate(paths, k: int, split: str, limit: int | None, category: str | None, device, as_json: bool) -> None:
    """Held-out negative ELBO and IWAE NLL (nats per drawing), MSE and KL; saved to RUN_DIR/eval.json
    (for the built-in model, to ./sheep-analysis/eval.json)."""
    from ..analysis.evaluate import evaluate_run
    from ..runs.checkpoint import is_builtin

    device = _device(device)
    run_dir, data = _run_and_data(paths)
    # The built-in model's eval.json is its model card's figure: write beside the user instead.
    out = (_default_out(run_dir, None) if is_builtin(run_dir) else run_dir) / "eval.json"
    result = evaluate_run(
        run_dir,
        data,
        k=k,
        split=split,
        limit=limit or None,
        progress=not as_json,
        out=out,
        category=category,
        device=device,
    )
    if as_json:
        echo(json_text(result))
        return
    told = f" (as {result['category']})" if result["category"] else ""
    data = listed(list(result["categories"])) if "categories" in result else result["data"]
    some = "" if result["n"] == result["split_size"] else f"the first {result['n']:,} of "
    drawings = some + counted(result["split_size"], f"{split} drawing")
    echo(f"{result['preset']} preset on {drawings} of {data}{told}:")
    echo(f"  negative ELBO  {result['nelbo']:.2f} nats")
    echo(f"  IWAE NLL       {result['iwae_nll']:.2f} nats (k = {k})")
    echo(f"  MSE            {result['mse']:.5f} per pixel")
    echo(f"  KL             {result['kl']:.3f} nats")
    for name, part in result.get("categories", {}).items():
        echo(f"  {name}: {counted(part['n'], 'drawing')}, IWAE NLL {part['iwae_nll']:.2f} nats")
    echo(f"wrote {out}")


# --------------------------------------------------------------------------- using a trained model
