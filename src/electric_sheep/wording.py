"""How counts read in messages, titles and captions."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """'1 drawing', '0 drawings', '12,000 drawings': a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
