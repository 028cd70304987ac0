"""Errors and warnings a user can act on. The CLI prints each in one line; errors exit with status 2."""

from __future__ import annotations

from pathlib import Path


class SheepError(Exception):
    """A problem with the user's input or environment, not a bug in electric-sheep."""


class DataError(SheepError):
    """A data file that cannot be read: the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputError(DataError):
    """A file or folder that cannot be written (a folder where a file should go, no permission...)."""


class ConfigError(SheepError):
    """An unknown or invalid option in a model or training configuration."""


class DownloadError(SheepError):
    """A download that could not complete (network down, server error, bad content)."""


class TrainingDiverged(SheepError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class SheepWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it in one line)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler's preemption), met as Ctrl-C is: training
    saves where it stopped and half-written files are removed."""
