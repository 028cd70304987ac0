"""What every command shares: the group that turns errors and warnings into one line, options, helpers."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import sys
import warnings
from functools import partial
from pathlib import Path

import click

from ..data import drawings as data_mod
from ..data.formats import is_picture_folder
from ..errors import SheepError, SheepWarning, Terminated
from ..runs.fileio import folder_lock, json_text, user_output
from ..runs.streaming import Shard

SEED = click.IntRange(0, 2**32 - 1)  # a seed scikit-learn's random_state takes too


class _Group(click.Group):
    """Turn every :class:`SheepError` into one line on stderr and exit status 2, no traceback,
    every :class:`SheepWarning` into one "warning: ..." line on stderr, when it happens, Ctrl-C
    into exit status 130 and SIGTERM into 143 (what was saved stays saved, a training run saves
    where it stopped)."""

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings(), _sigterm_as_interrupt():  # both restored afterwards
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            try:
                return super().invoke(ctx)
            except SheepError as e:
                echo(f"error: {_shown(str(e))}", err=True)
                sys.exit(2)
            except Terminated:
                echo("stopped by SIGTERM", err=True)
                sys.exit(128 + signal.SIGTERM)
            except KeyboardInterrupt:
                echo("stopped by Ctrl-C", err=True)
                sys.exit(130)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises :class:`Terminated` while a command runs. Python's default is to die at once,
    leaving temporary files and an interrupted epoch unsaved."""

    def terminate(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (a command run from a library's worker): leave it be
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Characters a terminal acts on rather than shows: C0 and C1 controls but the newline, and the
# bidirectional overrides that reorder what is shown
_UNSHOWN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def echo(text: str, err: bool = False) -> None:
    """Print ``text`` (stdout, or stderr) with what a terminal would act on shown as escapes: names
    come from files, and a file named with an escape sequence must not recolour, retitle or clear
    the user's terminal."""
    click.echo(_UNSHOWN.sub(lambda m: repr(m[0])[1:-1], text), err=err)


def _shown(message: str) -> str:
    """``message`` in one line (a library's text quoted in it may have several), with the built-in
    model's folder (deep inside the installed package) named as what it is to the user."""
    from ..runs.checkpoint import builtin_run_dir

    return " ".join(message.replace(str(builtin_run_dir()), "the built-in model").split())


def _one_line_warnings(show):
    """A ``warnings.showwarning`` that prints our warnings as one line and leaves others to ``show``."""

    def display(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SheepWarning):
            echo(f"warning: {_shown(str(message))}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    return display


class _Finite(click.FloatRange):
    """A float in range that is also finite: nan slips through click's range checks, inf through
    open upper bounds, and either would give a blank picture or a matplotlib traceback."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def _describe_range(self) -> str:
        """Nothing to add to --help without bounds (click would print "x<=None")."""
        return "" if self.min is None and self.max is None else super()._describe_range()


def _epoch_list(ctx, param, value: str | None) -> list[int] | None:
    """--epochs 5,10,15,20 as a list of integers, each once (None when not given)."""
    if value is None:
        return None
    try:
        return list(dict.fromkeys(int(e) for e in value.split(",") if e.strip()))
    except ValueError:
        raise click.BadParameter(f"give comma-separated integers, e.g. 5,10,15,20; got {value!r}") from None


def _channels(ctx, param, value: str | None) -> tuple[int, int] | None:
    """--channels 16,32 as the default preset's two filter counts (None when not given)."""
    if value is None:
        return None
    try:
        c1, c2 = (int(c) for c in value.split(","))
    except ValueError:
        raise click.BadParameter(f"give two comma-separated integers, e.g. 16,32; got {value!r}") from None
    if min(c1, c2) < 1:
        raise click.BadParameter(f"filter counts must be >= 1, got {value!r}")
    return c1, c2


def _out_option(default: Path | None, kind: str = "picture", help: str | None = None):
    """-o/--out for a picture, figure, animation or HTML page: its suffix checked while parsing,
    before any work is done (an unknown one is a one-line error); a symbolic link given here is
    followed (the file it names is replaced)."""
    from ..render.plots import figure_format, picture_format

    checks = {
        "picture": picture_format,
        "figure": figure_format,
        "animation": partial(picture_format, animated=True),
        "page": lambda path: None,  # HTML whatever the suffix
    }
    check = checks[kind]

    def checked(ctx, param, value: Path | None) -> Path | None:
        if value is None:
            return None
        check(value)
        return user_output(value)

    return click.option(
        "-o", "--out", type=click.Path(path_type=Path), default=default, show_default=default is not None,
        callback=checked, help=help,
    )  # fmt: skip


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="electric-sheep")
def main() -> None:
    """electric-sheep: teach a computer to recognise, remember and draw sheep."""


_run_dir_arg = click.argument(
    "run_dir", type=click.Path(path_type=Path), required=False, callback=lambda c, p, v: _run(v)
)
_run_and_data_args = click.argument("paths", nargs=-1, metavar="[RUN_DIR] [DATA]")


def _run(run_dir: Path | None) -> Path:
    """RUN_DIR, or the pretrained sheep shipped with the package when none is given."""
    from ..runs.checkpoint import builtin_run_dir

    return Path(run_dir) if run_dir is not None else builtin_run_dir()


def _run_and_data(paths: tuple[str, ...]) -> tuple[Path, str | None]:
    """Split ``[RUN_DIR] [DATA]``: one path is RUN_DIR when it is a run folder, else DATA (a file,
    or a folder of pictures: one of figures beside our JSON and CSV files is a mistyped RUN_DIR)."""
    from ..runs.checkpoint import is_run_dir, read_config

    if len(paths) > 2:
        raise click.UsageError("expected at most RUN_DIR and DATA")
    if len(paths) == 2:
        read_config(Path(paths[0]))  # its one-line error when RUN_DIR is none, before anything is written
        return Path(paths[0]), paths[1]
    if len(paths) == 1 and is_run_dir(paths[0]):
        return Path(paths[0]), None
    if len(paths) == 1 and Path(paths[0]).is_dir() and not is_picture_folder(Path(paths[0])):
        read_config(Path(paths[0]))  # a folder that is neither a run nor pictures: its error
    return _run(None), (paths[0] if paths else None)


def _default_out(run_dir: Path, out_dir: Path | None) -> Path:
    """--out-dir, else RUN_DIR/analysis, else (built-in model, read-only) ./sheep-analysis."""
    if out_dir is not None:
        return out_dir
    from ..runs.checkpoint import is_builtin

    return Path("sheep-analysis") if is_builtin(run_dir) else run_dir / "analysis"


def _writing_into(out_dir: Path, what: str):
    """OUT_DIR's lock while a command streams its results into it: a second command writing there
    stops at once instead of mixing its rows in. Under torchrun the first process holds it for all."""
    return folder_lock(out_dir, what) if Shard.from_env().main else contextlib.nullcontext()


def _cache_option(f):
    return click.option(
        "--dir",
        "cache_dir",
        type=click.Path(path_type=Path),
        default=None,
        help=f"Cache folder (default ${data_mod.CACHE_ENV} or ~/.cache/electric-sheep).",
    )(f)


def _out_dir_option(f):
    return click.option(
        "--out-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Where figures and numbers go (default RUN_DIR/analysis).",
    )(f)


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the numbers and paths as one JSON object.")(f)


def _category_option(does: str):
    """--category for the commands that decode: what a class-conditional model ``does``."""
    return click.option(
        "--category", default=None, help=f"What a class-conditional model {does} (one of its categories)."
    )


def _pick_options(f):
    f = click.option("--split", type=click.Choice(data_mod.SPLITS), default="test", show_default=True)(f)
    return click.option("--data", default=None, help="Drawings to pick from (default: the run's data).")(f)


def _drawings_given_as_run_dir(run_dir: Path, data: str | None) -> tuple[Path, str | None]:
    """(RUN_DIR, --data): drawings given where RUN_DIR goes and no --data are the drawings to pick
    from, for the built-in model, as ``sheep anomalies DATA`` reads them."""
    from ..runs.checkpoint import is_run_dir

    given = run_dir.is_file() or (run_dir.is_dir() and is_picture_folder(run_dir))
    if data is None and given and not is_run_dir(run_dir):
        return _run(None), str(run_dir)
    return run_dir, data


def _finish(result: dict, as_json: bool, lines: list[str]) -> None:
    """Print either the JSON object alone or the human lines (always saying where files went);
    on stderr when a file went to standard output (``-o /dev/stdout``), to keep it whole."""
    err = any(_is_stdout(v) for v in result.values() if isinstance(v, str))
    if as_json:
        echo(json_text(result), err=err)
    else:
        for line in lines:
            echo(line, err=err)


def _is_stdout(path: str) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, io.UnsupportedOperation):  # no such file, or stdout is not a real file
        return False


def _device(name: str | None):
    """Where a command that reads whole files runs its model: the CPU unless --device names another
    (one that is not here stops the command before it reads or writes anything)."""
    from ..core.devices import pick_device

    return pick_device(name) if name else "cpu"


def _device_option(f):
    """--device for the commands that run the model over whole files."""
    return click.option("--device", default=None, help="Run the model on cpu (default), cuda, cuda:1 ...")(f)


def _whole_file_split(help: str, default: str = "train"):
    """--split for the commands that can also take every drawing in the file (``all``)."""
    return click.option(
        "--split", type=click.Choice([*data_mod.SPLITS, "all"]), default=default, show_default=True, help=help
    )
