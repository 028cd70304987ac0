"""Drive `sheep app` in a real browser: start it, draw strokes with the mouse, wait for answers.

Shared by the browser test (tests/test_app.py) and the latency benchmark (benchmarks/app_latency.py).
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_S = 180  # loading torch, Gradio and the model on a busy 2-core machine
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots, for a person to look at


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(*args: str):
    """`sheep app ARGS` on a free port of 127.0.0.1; yields its address, stops it after."""
    port = free_port()
    cmd = [sys.executable, "-m", "electric_sheep", "app", *args, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, seen = time.time() + START_S, []
        while time.time() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "sheep app: open" in line:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"sheep app stopped: {''.join(seen)}")
        else:
            raise RuntimeError(f"sheep app did not start in {START_S} s: {''.join(seen)}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sheep_strokes() -> list[list[tuple[float, float]]]:
    """A sheep as strokes in canvas fractions: a body, a head and four legs (each stroke changes
    the 28x28 drawing, so each gets a new answer)."""
    body = [(0.5 + 0.28 * math.cos(t), 0.5 + 0.17 * math.sin(t)) for t in [i * 2 * math.pi / 24 for i in range(25)]]
    head = [(0.2 + 0.08 * math.cos(t), 0.36 + 0.07 * math.sin(t)) for t in [i * 2 * math.pi / 12 for i in range(13)]]
    legs = [[(x, 0.64), (x, 0.82)] for x in (0.33, 0.43, 0.58, 0.68)]
    return [body, head, *legs]


def house_strokes() -> list[list[tuple[float, float]]]:
    """Not a sheep: a house with a door, all straight lines."""
    walls = [(0.25, 0.45), (0.25, 0.85), (0.75, 0.85), (0.75, 0.45), (0.25, 0.45)]
    roof = [(0.2, 0.47), (0.5, 0.15), (0.8, 0.47)]
    door = [(0.45, 0.85), (0.45, 0.65), (0.55, 0.65), (0.55, 0.85)]
    return [walls, roof, door]


def settled_box(page, selector: str, tries: int = 50) -> dict:
    """The element's bounding box once two reads 0.1 s apart agree: Gradio lays its page out in
    steps, and a drag aimed at where the canvas was selects the page's text instead of drawing."""
    box = None
    for _ in range(tries):
        now = page.locator(selector).bounding_box()
        if now is not None and now == box:
            break
        box = now
        page.wait_for_timeout(100)
    return box


def draw(page, pad: str, stroke: list[tuple[float, float]]) -> float:
    """Draw one stroke on the sketchpad ``pad`` (a CSS selector); return when the mouse is up."""
    box = settled_box(page, f"{pad} canvas")
    points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
    page.mouse.move(*points[0])
    page.mouse.down()
    for a, b in zip(points, points[1:], strict=False):
        page.mouse.move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        page.mouse.move(*b)
    page.mouse.up()
    return time.perf_counter()


def answer_after(page, before: str, timeout_ms: int = 30_000) -> str:
    """Wait until the verdict's text is a new answer (not ``before``, nor Gradio's "processing"
    note in front of the old one); return it."""
    try:
        page.wait_for_function(
            "(b) => { const t = document.querySelector('#verdict').innerText;"
            " return t !== b && /^(looks like a sheep|does not look like|the canvas is|that is a single)/.test(t); }",
            arg=before,
            timeout=timeout_ms,
        )
    except Exception as e:  # say what the page showed, and keep a picture of it
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "no-answer.png"))
        now = page.locator("#verdict").inner_text()
        raise AssertionError(f"no new answer in {timeout_ms} ms: the verdict was {before!r}, is {now!r}") from e
    return page.locator("#verdict").inner_text()


def image_src(page, elem_id: str) -> str | None:
    img = page.locator(f"#{elem_id} img")
    return img.first.get_attribute("src") if img.count() else None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def chromium_missing() -> str | None:
    return None if Path(CHROMIUM).exists() else f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)"
