"""The interactive latent explorer: one self-contained HTML block, no server, no network.

The decoder is run ahead of time over a dense grid of the latent plane and the decodings are
packed into one sprite image; moving the pointer over the plane just copies the nearest tile to a
preview canvas, so it feels instant. Encoded drawings are plotted as points; clicking one shows
the drawing and its reconstruction (two more sprites, one tile per point).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..analysis.generate import decode_codes, manifold_axes, plane_codes
from ..analysis.latent import encode
from ..core.infer import drawings_tensor
from ..core.pixels import drawing_noise, pixel_noise
from ..errors import SheepError
from ..runs import checkpoint as ckpt
from ..runs.fileio import write_text
from ..runs.run_sources import run_data
from .plots import CATEGORY_COLOURS, grid_image

if TYPE_CHECKING:
    from ..data.drawings import Drawings

TILE = 28
EXPLORER_DRAWINGS = 600  # validation drawings shown as points (each ships two images)


def sprite(images: np.ndarray, ncols: int) -> str:
    """(N, 28, 28) drawings -> a PNG data URI of tiles, row-major, black ink on white, no gaps."""
    img = grid_image(images, ncols=ncols, scale=1, pad=0)
    return png_data_uri(img)


def png_data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def explorer_payload(
    model,
    codes: np.ndarray,
    originals: np.ndarray | None,
    grid: int = 40,
    span: float = 3.0,
    max_points: int = 600,
    categories: tuple[np.ndarray, list[str]] | None = None,
) -> dict:
    """Everything the page needs: the grid sprite, the points, their drawings and reconstructions.

    ``codes`` (N, D) are z_mean of real drawings (``originals``, uint8, or None when the drawings
    themselves are not at hand). For D > 2 the plane is spanned by the first two principal
    directions of the codes, as in the manifold. ``categories``: each drawing's category and
    their names (drawings of several files), to colour the points by.
    """
    ok = np.isfinite(codes).all(axis=1)
    codes = codes[ok][:max_points]
    originals = originals[ok][:max_points] if originals is not None else None
    labels = None if categories is None else categories[0][ok][:max_points]
    centre, axes = manifold_axes(model.config.latent_dim, codes if len(codes) >= 3 else None)
    # as the manifold: one noise for the map
    tiles = decode_codes(model, plane_codes(centre, axes, grid, span), noise=pixel_noise(1))
    # Plane coordinates of each code: solve centre + a * axes[0] + b * axes[1] ~ z (least squares).
    ab = np.linalg.lstsq(axes.T.astype(np.float64), (codes - centre).T.astype(np.float64), rcond=None)[0].T
    # each drawing decoded with randomness of its own where the drawings are at hand: as alone
    own = None if originals is None else drawing_noise(drawings_tensor(originals))
    recon = decode_codes(model, codes, noise=own) if len(codes) else np.zeros((0, TILE, TILE), np.float32)
    per_row = max(1, int(math.ceil(math.sqrt(max(len(codes), 1)))))
    return {
        "grid": grid,
        "span": span,
        "gridSprite": sprite(tiles, grid),
        "points": [[round(float(a), 4), round(float(b), 4)] for a, b in ab],
        "perRow": per_row,
        "reconSprite": sprite(recon, per_row) if len(codes) else None,
        "originalSprite": sprite(originals, per_row) if originals is not None and len(codes) else None,
        "axes": _axis_names(model.config.latent_dim),
        "pointer": "z" if model.config.latent_dim <= 2 else "(PC 1, PC 2)",  # what the readout's numbers are
        "categories": [] if categories is None else list(categories[1]),
        "palette": list(CATEGORY_COLOURS),
        "pointCategory": None if labels is None else [int(c) for c in labels],
    }


def _axis_names(latent_dim: int) -> list[str]:
    if latent_dim == 1:  # every row of the map is the same line
        return ["z[0]", "none (a 1-D latent)"]
    return ["z[0]", "z[1]"] if latent_dim == 2 else ["PC 1 (sd)", "PC 2 (sd)"]


def explorer_points(
    model, drawings: Drawings | None, run_dir: str | Path
) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, list[str]] | None]:
    """(codes, drawings, categories) of the explorer's points: the first validation drawings of
    ``drawings``, encoded; without drawings, the codes the run saved after its last epoch (none
    when it saved none)."""
    if drawings is None:
        saved = ckpt.last_latents(run_dir)
        return (saved if saved is not None else np.zeros((0, model.config.latent_dim))), None, None
    originals = drawings.split("valid", limit=EXPLORER_DRAWINGS)
    return encode(model, originals), originals, drawings.categories("valid", limit=EXPLORER_DRAWINGS)


def explorer_page(
    run_dir: str | Path, out: str | Path, data: str | None = None, grid: int = 40, span: float = 3.0
) -> dict:
    """A standalone page of the run's latent plane at ``out``, ``grid`` decodings a side over
    +-``span``: the validation drawings of ``data`` (else of the run's own data) as points; with no
    drawings at hand, the codes the run saved after its last epoch."""
    model = ckpt.load_model(run_dir)
    try:
        drawings = run_data(run_dir, data)
    except SheepError:
        if data is not None:  # drawings the user named must be there
            raise
        drawings = None
    codes, originals, categories = explorer_points(model, drawings, run_dir)
    payload = explorer_payload(model, codes, originals, grid, span, EXPLORER_DRAWINGS, categories)
    write_text(out, standalone_page(payload))
    return {"page": str(out), "points": int(len(codes))}


def explorer_html(payload: dict, element_id: str = "explorer") -> str:
    """The explorer's HTML, CSS and JavaScript, to place inside a page."""
    return _TEMPLATE.replace("__ID__", element_id).replace("__DATA__", script_json(payload))


def script_json(value: Any) -> str:
    """JSON to place inside a ``<script>``: ``<``, ``>`` and ``&`` as JavaScript escapes, so that
    no text of a run folder (a category named ``</script><img ...>``) can end the block and run."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def standalone_page(payload: dict, title: str = "electric-sheep latent explorer") -> str:
    """A whole HTML page holding only the explorer."""
    title = html.escape(title)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>{STYLE}</head><body><main>"
        f"<h1>{title}</h1>{explorer_html(payload)}</main></body></html>"
    )


STYLE = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1080px;margin:0 auto;padding:1.2rem 1.5rem 3rem}
h1{font-size:1.7rem;margin:.4rem 0 .2rem} h2{font-size:1.25rem;margin:2rem 0 .4rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem} p.caption{color:#555;margin:.2rem 0 .8rem;font-size:.92rem}
img.fig{max-width:100%;height:auto;border:1px solid #e3e3e3;background:white}
table{border-collapse:collapse;font-size:.9rem} td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:right}
.explorer{display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start}
.explorer canvas{background:white;border:1px solid #ccc;image-rendering:pixelated}
.explorer .side{display:flex;flex-direction:column;gap:.6rem;font-size:.9rem}
.explorer .pair{display:flex;gap:.6rem}
.explorer .pair div{text-align:center;font-size:.8rem;color:#555}
</style>"""

_TEMPLATE = """
<div class="explorer" id="__ID__">
  <canvas class="plane" width="480" height="480" aria-label="latent plane"></canvas>
  <div class="side">
    <div><b>Decoder at the pointer</b> <span class="coords">(move the pointer over the plane)</span></div>
    <canvas class="preview" width="224" height="224" aria-label="decoded drawing"></canvas>
    <div class="legend"></div>
    <div><b>Clicked drawing</b> <span class="picked">(click a point)</span></div>
    <div class="pair">
      <div><canvas class="original" width="112" height="112"></canvas><br>drawing</div>
      <div><canvas class="recon" width="112" height="112"></canvas><br>reconstruction</div>
    </div>
  </div>
</div>
<script>
(function () {
  const D = __DATA__;
  const root = document.getElementById("__ID__");
  const plane = root.querySelector(".plane"), preview = root.querySelector(".preview");
  const pctx = plane.getContext("2d"), vctx = preview.getContext("2d");
  const T = 28, M = 36, W = plane.width - 2 * M, H = plane.height - 2 * M;
  const PALETTE = D.palette;  // the latent scatter's colours of categories; one colour without them
  const colour = (i) => D.pointCategory ? PALETTE[D.pointCategory[i] % PALETTE.length] : "#3b6ea5";
  root.querySelector(".legend").innerHTML = D.categories.map((name, c) =>
    '<span style="color:' + PALETTE[c % PALETTE.length] + '">&#9679;</span> ' + name.replace(/[&<>"]/g, "")).join(" &nbsp; ");
  const load = (src) => new Promise((ok) => { if (!src) return ok(null); const i = new Image(); i.onload = () => ok(i); i.src = src; });
  const toPx = (a, b) => [M + (a + D.span) / (2 * D.span) * W, M + (D.span - b) / (2 * D.span) * H];
  const toZ = (x, y) => [(x - M) / W * 2 * D.span - D.span, D.span - (y - M) / H * 2 * D.span];
  Promise.all([load(D.gridSprite), load(D.reconSprite), load(D.originalSprite)]).then(([grid, recon, orig]) => {
    function drawPlane() {
      pctx.fillStyle = "white"; pctx.fillRect(0, 0, plane.width, plane.height);
      pctx.strokeStyle = "#ddd"; pctx.lineWidth = 1;
      for (let t = -Math.floor(D.span); t <= D.span; t++) {
        const [x] = toPx(t, 0), [, y] = toPx(0, t);
        pctx.beginPath(); pctx.moveTo(x, M); pctx.lineTo(x, M + H); pctx.stroke();
        pctx.beginPath(); pctx.moveTo(M, y); pctx.lineTo(M + W, y); pctx.stroke();
        pctx.fillStyle = "#666"; pctx.font = "11px sans-serif"; pctx.textAlign = "center";
        pctx.fillText(String(t), x, M + H + 14); pctx.textAlign = "right"; pctx.fillText(String(t), M - 5, y + 4);
      }
      pctx.strokeStyle = "#999"; pctx.strokeRect(M, M, W, H);
      pctx.fillStyle = "#333"; pctx.textAlign = "center"; pctx.font = "12px sans-serif";
      pctx.fillText(D.axes[0], M + W / 2, plane.height - 6);
      pctx.save(); pctx.translate(12, M + H / 2); pctx.rotate(-Math.PI / 2); pctx.fillText(D.axes[1], 0, 0); pctx.restore();
      pctx.globalAlpha = 0.6;
      D.points.forEach(([a, b], i) => {
        if (Math.abs(a) > D.span || Math.abs(b) > D.span) return;
        const [x, y] = toPx(a, b); pctx.fillStyle = colour(i);
        pctx.beginPath(); pctx.arc(x, y, 2.6, 0, 2 * Math.PI); pctx.fill();
      });
      pctx.globalAlpha = 1;
    }
    function showCell(x, y) {
      const [a, b] = toZ(x, y);
      const col = Math.min(D.grid - 1, Math.max(0, Math.round((a + D.span) / (2 * D.span) * (D.grid - 1))));
      const row = Math.min(D.grid - 1, Math.max(0, Math.round((D.span - b) / (2 * D.span) * (D.grid - 1))));
      vctx.imageSmoothingEnabled = false;
      vctx.drawImage(grid, col * T, row * T, T, T, 0, 0, preview.width, preview.height);
      preview.dataset.cell = row + "," + col;
      root.querySelector(".coords").textContent = D.pointer + " = (" + a.toFixed(2) + ", " + b.toFixed(2) + ")";
    }
    function tile(img, i, canvas) {
      const c = canvas.getContext("2d"); c.imageSmoothingEnabled = false; c.fillStyle = "#eee";
      c.fillRect(0, 0, canvas.width, canvas.height);
      if (!img) { c.fillStyle = "#777"; c.font = "11px sans-serif"; c.fillText("not available", 18, 60); return; }
      c.drawImage(img, (i % D.perRow) * T, Math.floor(i / D.perRow) * T, T, T, 0, 0, canvas.width, canvas.height);
    }
    plane.addEventListener("mousemove", (e) => { const r = plane.getBoundingClientRect(); showCell(e.clientX - r.left, e.clientY - r.top); });
    plane.addEventListener("click", (e) => {
      const r = plane.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
      let best = -1, bestD = 64;
      D.points.forEach(([a, b], i) => { const [px, py] = toPx(a, b); const d = (px - x) ** 2 + (py - y) ** 2; if (d < bestD) { bestD = d; best = i; } });
      if (best < 0) return;
      tile(orig, best, root.querySelector(".original")); tile(recon, best, root.querySelector(".recon"));
      const what = D.pointCategory ? " (" + D.categories[D.pointCategory[best]] + ")" : "";
      root.querySelector(".picked").textContent = "point " + best + what;
    });
    drawPlane(); showCell(M + W / 2, M + H / 2);
    root.pointPosition = (i) => toPx(D.points[i][0], D.points[i][1]);  // canvas pixels of point i
    root.dataset.ready = "1";
  });
})();
</script>
"""
