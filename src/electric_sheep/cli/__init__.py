"""The ``sheep`` command line: each command is a thin call into a library function."""

from . import anomalies, data, drawing, latent, pages, training  # noqa: F401  (registers the commands)
from .common import main

__all__ = ["main"]
