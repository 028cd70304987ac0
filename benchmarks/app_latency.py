"""`sheep app`: time from the end of a stroke to the updated answer in the page, in a real browser.

Starts the app with the built-in model and the real Google sheep as reference, draws 20 strokes
with the mouse in headless Chromium (the sheep of the browser test, then more, after a clear) and
reports the median and the slowest time from mouse-up to the new verdict.

    python benchmarks/app_latency.py [--strokes 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from _common import SHARED, machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from app_driver import answer_after, chromium_missing, draw, house_strokes, launch, running_app, sheep_strokes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=20)
    args = parser.parse_args()
    if reason := chromium_missing():
        raise SystemExit(reason)
    from playwright.sync_api import sync_playwright

    # Every stroke shifted a little, so that each one changes the drawing and its answer.
    rng = random.Random(0)
    strokes = [
        [(x + dx, y + dy) for x, y in stroke]
        for stroke in (sheep_strokes() + house_strokes()) * args.strokes
        for dx, dy in [(rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05))]
    ]
    times = []
    with running_app("--data", str(SHARED / "quickdraw" / "bitmap" / "sheep.npy")) as url, sync_playwright() as p:
        page = launch(p).new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url)
        page.wait_for_selector("#pad canvas[data-ready]", timeout=60_000)
        warm = page.locator("#verdict").inner_text()
        draw(page, "#pad", strokes[0])  # the first answer also loads the model's kernels: not timed
        answer_after(page, warm)
        for stroke in strokes[1 : args.strokes + 1]:
            before = page.locator("#verdict").inner_text()
            up = draw(page, "#pad", stroke)
            answer_after(page, before)
            times.append(time.perf_counter() - up)
    print(f"machine: {machine()}")
    print(
        f"stroke -> answer over {len(times)} strokes: median {statistics.median(times) * 1000:.0f} ms, "
        f"slowest {max(times) * 1000:.0f} ms, fastest {min(times) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
