"""How counts and lists read in messages, titles and captions."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """'1 drawing', '0 drawings', '12,000 drawings': a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def listed(names: list[str]) -> str:
    """'sheep', 'sheep and cat', 'sheep, cat and duck'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
