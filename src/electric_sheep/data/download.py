"""Fetch official Quick, Draw! files into the cache, resumably and atomically.

A download goes to ``<target>.part``; an interrupted transfer leaves that file and the next call
asks the server for the rest (HTTP ``Range``). Only a complete file that parses is renamed to its
final name, so a half-downloaded file is never mistaken for data.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError, DownloadError
from ..runs.fileio import ensure_dir
from .drawings import cached_category_path, check_category
from .formats import check_file

BASE_URL = "https://storage.googleapis.com/quickdraw_dataset"
BASE_URL_ENV = "ELECTRIC_SHEEP_BASE_URL"  # a mirror, or a local server in tests
_URL_PATHS = {  # download format -> path under BASE_URL, {name} URL-quoted
    "bitmap": "full/numpy_bitmap/{name}.npy",
    "simplified": "full/simplified/{name}.ndjson",
    "raw": "full/raw/{name}.ndjson",
    "binary": "full/binary/{name}.bin",
    "sketchrnn": "sketchrnn/{name}.npz",
}
CHUNK = 1 << 16


def category_url(category: str, fmt: str = "bitmap", base_url: str | None = None) -> str:
    """The official storage URL of ``category`` in format ``fmt``."""
    base = (base_url or os.environ.get(BASE_URL_ENV) or BASE_URL).rstrip("/")
    return f"{base}/{_URL_PATHS[fmt].format(name=urllib.parse.quote(category))}"


def download(
    category: str,
    fmt: str = "bitmap",
    cache_dir: Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``category`` in format ``fmt`` into the cache and return the file's path.

    An existing complete file is returned at once; a ``.part`` file left by an interrupted
    transfer is resumed.
    """
    if fmt not in _URL_PATHS:
        raise DownloadError(f"unknown format {fmt!r}; choose one of {', '.join(_URL_PATHS)}")
    category = check_category(category)
    target = cached_category_path(category, fmt, cache_dir)
    if target.is_file():
        return target
    url = category_url(category, fmt, base_url)
    part = target.with_name(target.name + ".part")
    ensure_dir(target.parent)
    _fetch(url, part, target, progress=progress, timeout=timeout)
    _check_parses(part, target)
    os.replace(part, target)
    return target


def download_categories(
    categories: list[str], fmt: str = "bitmap", cache_dir: Path | None = None, **options
) -> dict[str, Path]:
    """:func:`download` each of ``categories`` in turn (``options``: its keywords): official name ->
    path. Every name is checked first, so a misspelt one stops the command before anything is
    fetched; files fetched before a failure stay in the cache, and the same command run again
    skips them."""
    names = dict.fromkeys(check_category(c) for c in categories)
    return {name: download(name, fmt, cache_dir, **options) for name in names}


def _fetch(url: str, part: Path, target: Path, *, progress: bool, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part``."""
    have = part.stat().st_size if part.exists() else 0
    response = _open(url, have, target, timeout)
    if response is None:  # nothing left to send: the .part is already whole
        return
    with response:
        if have and response.status != 206:  # server ignored Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        bar = tqdm(
            total=(expected + have) if expected is not None else None,
            initial=have,
            unit="B",
            unit_scale=True,
            desc=target.name,
            disable=not progress,
            leave=False,
        )
        with bar:
            got = _copy(response, part, have, bar, url)
    if expected is not None and got < expected:
        raise DownloadError(
            f"{url}: transfer interrupted after {have + got} of {have + expected} bytes; "
            "run the same command again to resume"
        )


def _open(url: str, have: int, target: Path, timeout: float) -> http.client.HTTPResponse | None:
    """The response for the bytes of ``url`` from ``have`` on; None when there are none left."""
    request = urllib.request.Request(url, headers={"User-Agent": "electric-sheep"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    where = f"put a copy obtained by other means at {target}"
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; {where}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not reach {url} ({reason}); {where}") from None


def _copy(response: http.client.HTTPResponse, part: Path, have: int, bar: tqdm, url: str) -> int:
    """Write the response to ``part`` (appended after ``have`` bytes, else anew); the bytes written."""
    got = 0
    try:
        with open(part, "ab" if have else "wb") as f:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    except (http.client.IncompleteRead, OSError) as e:
        raise DownloadError(
            f"{url}: transfer interrupted after {have + got} bytes ({type(e).__name__}); "
            "run the same command again to resume"
        ) from None
    return got


def _check_parses(part: Path, target: Path) -> None:
    """Raise (and drop the bad file) unless the downloaded bytes are a data file we can read."""
    try:
        check_file(part)
    except DataError as e:
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloaded file for {target.name} is not valid data ({e.problem})") from None
