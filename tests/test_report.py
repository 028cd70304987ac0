"""The built-in model, the HTML report and the latent explorer, driven in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from app_driver import ARTIFACTS, CHROMIUM, FLAGS
from click.testing import CliRunner
from PIL import Image

from electric_sheep.cli import main
from electric_sheep.core.model import count_parameters
from electric_sheep.data.drawings import cached_category_path
from electric_sheep.errors import SheepWarning
from electric_sheep.render.explorer import explorer_page
from electric_sheep.render.report import build_report
from electric_sheep.runs.checkpoint import builtin_run_dir, load_model, read_config

ROOT = Path(__file__).resolve().parents[1]


def _sheep(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "electric_sheep", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_builtin_model_is_shipped_with_its_card():
    run = builtin_run_dir()
    model = load_model(run)
    config = read_config(run)
    assert config["model"]["preset"] == "default" and model.config.latent_dim == 16
    assert model.pixel_head is not None and model.prior is not None  # the default as it ships
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    assert size < 5e6, f"the built-in model takes {size / 1e6:.1f} MB"
    card = (run / "MODEL_CARD.md").read_text()
    assert "CC BY 4.0" in card and "test NLL" in card and count_parameters(model) > 0
    assert "validation split" in card and "test split played no part" in card


def test_draw_and_report_work_with_no_data_and_no_run(tmp_path):
    """As right after `pip install`: no RUN_DIR, no data, no network."""
    env = {
        **os.environ,
        "ELECTRIC_SHEEP_CACHE": str(tmp_path / "cache"),
        "ELECTRIC_SHEEP_BASE_URL": "http://127.0.0.1:9",
    }
    proc = _sheep("draw", "-o", "sheep.png", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    img = np.asarray(Image.open(tmp_path / "sheep.png"))
    assert img.shape == ((8 * 30 + 2) * 3, (8 * 30 + 2) * 3)  # 8x8 tiles of 28 px + 2 px gaps, x3
    assert (img < 128).mean() > 0.02  # there is ink on the page
    proc = _sheep("report", "-o", "report.html", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report.html").read_text()
    for section in ("training", "latent-epochs", "samples", "manifold", "explorer"):
        assert f"id='{section}'" in page
    assert page.count("src='data:image/gif;base64,") == 2  # the latent space epoch by epoch; a dream
    assert "drawn as each category" not in page  # the built-in model has no categories
    assert "<h2>New sheep</h2>" in page
    assert "first two principal directions, from -3 to 3 standard deviations" in page  # 16-D: not "the latent plane"
    assert "http://" not in page and "https://" not in page  # nothing to fetch when opened


def test_the_built_in_model_reads_the_downloaded_sheep(shared, tmp_path, monkeypatch):
    """After `sheep download sheep`, the built-in model's commands need no DATA: `sheep latent` maps
    the downloaded sheep (not a folder called sheep where it runs), `sheep report` shows their
    reconstructions and clusters, and `sheep explore` shows them as points."""
    target = cached_category_path("sheep", "bitmap")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / "quickdraw" / "bitmap" / "sheep.npy", target)  # as downloaded
    (tmp_path / "sheep").mkdir()  # a folder of one picture, in the working directory
    square = np.full((28, 28), 255, np.uint8)
    square[5:23, 5:8] = square[5:23, 20:23] = square[5:8, 5:23] = square[20:23, 5:23] = 0
    Image.fromarray(square).save(tmp_path / "sheep" / "x.png")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["latent", "--out-dir", str(tmp_path)])
    assert res.exit_code == 0 and "encoded 1,000 drawings" in res.output, res.output
    with warnings.catch_warnings():
        warnings.simplefilter("error", SheepWarning)  # nothing is left out
        result = build_report(builtin_run_dir(), tmp_path / "report.html")
    assert {"reconstructions", "clusters"} <= set(result["sections"]), result
    explorer_page(builtin_run_dir(), tmp_path / "explorer.html")
    assert '"originalSprite": "data:image' in (tmp_path / "explorer.html").read_text()  # real sheep to hover over


def test_a_report_names_new_drawings_after_what_the_run_learned(tmp_path):
    """The samples of a model of cats are not called new sheep (a copy of the built-in model's
    folder still is: its config says what it learned)."""
    for name, source, title in [("cats", "data/cat.npy", "New drawings"), ("copy", None, "New sheep")]:
        run = tmp_path / name
        shutil.copytree(builtin_run_dir(), run)
        config = json.loads((run / "config.json").read_text())
        if source:
            config["data"] = {"source": source, "format": "bitmap", "split_seed": 0}
        (run / "config.json").write_text(json.dumps(config))
        proc = _sheep("report", str(run), "-o", "r.html", cwd=run)
        assert proc.returncode == 0, proc.stderr
        assert f"<h2>{title}</h2>" in (run / "r.html").read_text(), name


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """The report of the built-in model with the real bitmap sheep as DATA, plus an anomaly run."""
    shared = ROOT.parent / "shared" / "data" / "quickdraw" / "bitmap"
    if not (shared / "sheep.npy").is_file():
        pytest.skip(f"real data not found at {shared}")
    tmp = tmp_path_factory.mktemp("report")
    run = tmp / "run"
    shutil.copytree(builtin_run_dir(), run)  # a writable copy, so the anomalies land in its analysis/
    proc = _sheep("anomalies", str(run), str(shared / "sheep.npy"), "--mix", f"{shared / 'cat.npy'}:0.05", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    proc = _sheep("report", str(run), str(shared / "sheep.npy"), "-o", "report.html", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp / "report.html"


def test_report_in_a_real_browser(full_report):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(full_report.as_uri())
        for section in (
            "training",
            "latent-epochs",
            "samples",
            "reconstructions",
            "manifold",
            "clusters",
            "anomalies",
            "explorer",
        ):
            assert page.locator(f"section#{section} h2").count() == 1, section
        page.wait_for_selector("#explorer[data-ready='1']", timeout=15000)
        plane = page.locator("#explorer canvas.plane")
        plane.scroll_into_view_if_needed()
        box = plane.bounding_box()
        shown = []
        for fx, fy in ((0.15, 0.15), (0.85, 0.85)):  # two far-apart points of the plane
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            shown.append(
                (
                    page.locator("#explorer canvas.preview").get_attribute("data-cell"),
                    page.evaluate("document.querySelector('#explorer canvas.preview').toDataURL()"),
                )
            )
        assert shown[0][0] != shown[1][0] and shown[0][1] != shown[1][1]
        # The built-in model's 16-D codes are shown on their first two principal directions: the
        # readout names them (it had said z = (a, b), as for a 2-D latent).
        assert page.locator("#explorer .coords").inner_text().startswith("(PC 1, PC 2) = (")
        # Click the encoded drawing nearest the centre: its drawing and reconstruction appear.
        px, py, i = page.evaluate("""() => { const r = document.getElementById('explorer'); let best = [0, 0, -1, 1e9];
            for (let i = 0; i < 600; i++) { try { const [x, y] = r.pointPosition(i);
              const d = (x - 240) ** 2 + (y - 240) ** 2; if (d < best[3]) best = [x, y, i, d]; } catch (e) { break; } }
            return best.slice(0, 3); }""")
        assert i >= 0
        page.mouse.click(box["x"] + px, box["y"] + py)
        assert page.locator("#explorer .picked").inner_text() == f"point {i}"
        ink = page.evaluate("""() => ['original', 'recon'].map((c) => {
            const cv = document.querySelector('#explorer canvas.' + c);
            const d = cv.getContext('2d').getImageData(0, 0, 112, 112).data;
            let dark = 0; for (let k = 0; k < d.length; k += 4) if (d[k] < 128) dark++; return dark; })""")
        assert ink[0] > 50 and ink[1] > 50, ink  # both canvases show a drawing
        page.screenshot(path=str(ARTIFACTS / "explorer.png"))
        browser.close()
    assert not errors, errors
    assert all(u.startswith(("file:", "data:")) for u in requests), [u for u in requests if not u.startswith("data:")]
    assert Image.open(ARTIFACTS / "explorer.png").size == (1280, 900)


def test_the_explorer_colours_and_names_the_categories_of_its_points(tmp_path):
    """Drawings of several files: each point in its category's colour (the latent scatter's), a
    legend, and the clicked point's category named."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    from electric_sheep.core.model import build_model, make_model_config
    from electric_sheep.render.explorer import explorer_payload, standalone_page

    model = build_model(make_model_config("seed")).eval()
    codes = np.array([[-2.0, -2.0], [2.0, 2.0]], np.float32)  # far apart: one point of each category
    categories = (np.array([0, 1]), ["sheep", "cat"])
    page_file = tmp_path / "explorer.html"
    page_file.write_text(standalone_page(explorer_payload(model, codes, None, grid=4, categories=categories)))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        page.wait_for_selector("#explorer[data-ready='1']", timeout=15000)
        assert page.locator("#explorer .legend").inner_text().split() == ["●", "sheep", "●", "cat"]
        colours = page.evaluate("""() => { const r = document.getElementById('explorer');
            const c = r.querySelector('canvas.plane').getContext('2d');
            return [0, 1].map((i) => { const [x, y] = r.pointPosition(i);
              return Array.from(c.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)); }); }""")
        assert colours[0][2] > colours[0][0] and colours[1][0] > colours[1][2], colours  # tab10 blue, then orange
        box = page.locator("#explorer canvas.plane").bounding_box()
        x, y = page.evaluate("document.getElementById('explorer').pointPosition(1)")
        page.mouse.click(box["x"] + x, box["y"] + y)
        assert page.locator("#explorer .picked").inner_text() == "point 1 (cat)"
        browser.close()


def test_a_category_named_like_markup_stays_text_in_the_explorer(tmp_path):
    """A run folder's config.json is data: a category named ``</script><img ...>`` must neither
    end the explorer's script nor put an element into the page; it is shown as the text it is."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    from electric_sheep.core.model import build_model, make_model_config
    from electric_sheep.render.explorer import explorer_payload, standalone_page

    hostile = "</script><img src=x onerror=\"document.title='ran'\"><!--"
    model = build_model(make_model_config("seed")).eval()
    codes = np.array([[-2.0, -2.0], [2.0, 2.0]], np.float32)
    page_file = tmp_path / "explorer.html"
    payload = explorer_payload(model, codes, None, grid=4, categories=(np.array([0, 1]), ["sheep", hostile]))
    page_file.write_text(standalone_page(payload))
    assert hostile not in page_file.read_text()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        page.wait_for_selector("#explorer[data-ready='1']", timeout=15000)  # the script ran whole
        assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
        box = page.locator("#explorer canvas.plane").bounding_box()
        x, y = page.evaluate("document.getElementById('explorer').pointPosition(1)")
        page.mouse.click(box["x"] + x, box["y"] + y)
        assert page.locator("#explorer .picked").inner_text() == f"point 1 ({hostile})"
        assert page.title() != "ran"
        browser.close()
