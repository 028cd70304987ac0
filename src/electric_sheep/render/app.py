"""``sheep app``: a local web page (Gradio) to draw a sheep (or what else the model learned)
and see what the model makes of it.

Three tabs: *Draw* (the drawing as the model sees it, its reconstruction, how typical it is,
where it lands on the map, the nearest real drawings, updated on every stroke), *Dream* (decode a
point chosen with sliders, a click on the map or "surprise me") and *Interpolate* (the decoded
path between two drawings). The computing is :mod:`electric_sheep.analysis.sketchbook`'s; this module only
lays out the page and wires it. Nothing is fetched from the internet: Gradio serves its own
assets and the theme uses the fonts it ships.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from ..analysis import sketchbook as sb
from ..errors import SheepError
from ..wording import counted
from .plots import grid_image

TILE_SCALE = 6  # a 28x28 drawing is shown at 168x168
STEPS = 8  # decodings between the two drawings of an interpolation
SLIDER_ROUNDING = 0.006  # the sliders hold two decimals: a sampled code's place is within this

PAD_FILES = ("sketchpad.html", "sketchpad.css", "sketchpad.js")  # in the package's static/ folder


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        gr = None
    if not hasattr(gr, "Blocks"):  # absent, or the leftovers of an uninstalled one
        raise SheepError("the app needs Gradio, an optional extra: pip install 'electric-sheep[app]'")
    return gr


def _plain(text: str) -> str:
    """Markdown whose names (a run's categories, from its files or config.json) stay text: a
    category named ``<img ...>`` is shown as written, never made into an element."""
    return html.escape(text, quote=False)


def _tile(image: np.ndarray):
    return grid_image(image[None], ncols=1, scale=TILE_SCALE, pad=0)


def on_sketch(ref: sb.Reference, value):
    """Outputs of the Draw tab for one state of the sketchpad: seen, reconstruction, verdict,
    map, neighbours (a message and blanks when the canvas is not a drawing)."""
    try:
        verdict = sb.judge(ref, sb.sketch_bitmap(value, ref.subject))
    except sb.SketchProblem as e:
        return None, None, f"**{_plain(str(e))}**", sb.map_image(ref), None
    near = grid_image(verdict.neighbours, ncols=sb.NEIGHBOURS, scale=3) if verdict.neighbours is not None else None
    strokes = sb.stroke_count(value)
    # the count tells the user (and a test) which drawing was judged when the numbers barely move
    summary = verdict.summary(ref.threshold, ref.rule, ref.subject)
    text = f"{summary}; {counted(strokes, 'stroke')} seen"
    if verdict.neighbours is None:
        download = "`sheep download sheep` or " if ref.subject == "a sheep" else ""
        text += f" (the nearest real drawings need the data: {download}`--data DATA`)"
    return _tile(verdict.bitmap), _tile(verdict.reconstruction), _plain(text), sb.map_image(ref, verdict.point), near


def on_point(ref: sb.Reference, x: float, y: float, sampled: list[float] | None = None):
    """The Dream tab: the drawing at (x, y) of the map, and the map with that point. When the
    sliders show where the code ``sampled`` by "surprise me" lies, that code itself is drawn (with
    more than two latent dimensions it is more than its place on the map)."""
    point = np.array([x, y])
    code = None if sampled is None else np.asarray(sampled, np.float32)
    if code is not None and np.abs(ref.to_plane(code[None])[0] - point).max() < SLIDER_ROUNDING:
        drawing = sb.decode_one(ref, code)
    else:
        drawing = sb.dream_at(ref, (x, y))
    return _tile(drawing), sb.map_image(ref, point)


def on_map_click(ref: sb.Reference, event) -> tuple[float, float]:
    """A click on the map: the slider values of the point clicked."""
    return _on_sliders(ref, sb.map_point(ref, event.index))


def on_surprise(ref: sb.Reference, temperature: float, seed: int):
    """ "Surprise me": a code sampled from the prior at the temperature; the sliders move to its
    place on the map. Returns the sliders' values, the next seed and the code."""
    code = sb.sample_code(ref, temperature, seed)
    return *_on_sliders(ref, ref.to_plane(code[None])[0]), seed + 1, code.tolist()


def _on_sliders(ref: sb.Reference, point: np.ndarray) -> tuple[float, float]:
    """A point of the map as the sliders can show it: within their range, two decimals."""
    x, y = np.clip(point, -ref.span, ref.span).round(2)
    return float(x), float(y)


def on_interpolate(ref: sb.Reference, start, end, source: str, first: int, last: int, steps: int):
    """The Interpolate tab: the path between two drawings, drawn or picked from the data."""
    try:
        if source == "drawn":
            a, b = (sb.sketch_bitmap(v, ref.subject) for v in (start, end))
        else:
            a, b = _picked(ref, int(first), int(last))
    except sb.SketchProblem as e:
        return None, f"**{_plain(str(e))}**"
    path = sb.path_between(ref, a, b, int(steps))
    return grid_image(path, ncols=len(path), scale=3), f"{int(steps)} decodings between the two drawings"


def _picked(ref: sb.Reference, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    if ref.images is None:
        raise sb.SketchProblem("no data to pick from: `sheep download sheep` or `--data DATA`")
    n = len(ref.images)
    if not (0 <= first < n and 0 <= last < n):
        raise sb.SketchProblem(f"pick drawings 0 to {n - 1}")
    return ref.images[first], ref.images[last]


def build(ref: sb.Reference, title: str = "electric-sheep"):
    """The page, as a Gradio Blocks (not started)."""
    gr = _gradio()
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(_plain(f"# {title}: draw {ref.subject or 'something'} and see what the model makes of it"))
        with gr.Tab("Draw"):
            _draw_tab(gr, ref)
        with gr.Tab("Dream"):
            _dream_tab(gr, ref)
        with gr.Tab("Interpolate"):
            _interpolate_tab(gr, ref)
    return page


def _sketchpad(gr, label: str, elem_id: str):
    """A canvas that sends its strokes as JSON (see static/sketchpad.js)."""
    folder = resources.files("electric_sheep").joinpath("static")
    html, css, js = (folder.joinpath(name).read_text("utf-8") for name in PAD_FILES)
    return gr.HTML(
        "",
        label=label,
        show_label=True,
        container=True,
        html_template=html,
        css_template=css,
        js_on_load=js,
        elem_id=elem_id,
    )


def _image(gr, label: str, elem_id: str):
    return gr.Image(label=label, elem_id=elem_id, type="pil", interactive=False, buttons=[])


def _draw_tab(gr, ref: sb.Reference) -> None:
    with gr.Row():
        pad = _sketchpad(gr, f"draw {ref.subject} here" if ref.subject else "draw here", "pad")
        with gr.Column():
            with gr.Row():
                seen = _image(gr, "as the model sees it (28 x 28)", "seen")
                recon = _image(gr, "as the model remembers it", "recon")
            prompt = f"Draw {ref.subject}" if ref.subject else "Draw"
            verdict = gr.Markdown(_plain(f"{prompt}: the model answers on every stroke."), elem_id="verdict")
    with gr.Row():
        where = _image(gr, "where it lands on the map of the training drawings' codes", "map")
        near = _image(gr, f"the {sb.NEIGHBOURS} nearest real drawings", "near")
    pad.change(
        lambda v: on_sketch(ref, v),
        inputs=pad,
        outputs=[seen, recon, verdict, where, near],
        trigger_mode="always_last",
        show_progress="hidden",
    )


def _dream_tab(gr, ref: sb.Reference) -> None:
    with gr.Row():
        with gr.Column():
            x = gr.Slider(-ref.span, ref.span, value=0.0, step=0.05, label="first axis of the map", elem_id="dream-x")
            y = gr.Slider(-ref.span, ref.span, value=0.0, step=0.05, label="second axis of the map", elem_id="dream-y")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="temperature (surprise me)")
            seed = gr.State(0)
            button = gr.Button("Surprise me", elem_id="surprise")
        dream = _image(gr, "the decoder's drawing", "dream")
        where = _image(gr, "the point on the map (click to choose)", "dream-map")
    sampled = gr.State(None)  # the last code "surprise me" drew from the prior

    # No triggers: on opening the page and on every change of the sliders.
    def drawn(a, b, c):
        return on_point(ref, a, b, c)

    gr.on(None, drawn, inputs=[x, y, sampled], outputs=[dream, where], show_progress="hidden")
    surprised = button.click(
        lambda t, s: on_surprise(ref, t, s), inputs=[temperature, seed], outputs=[x, y, seed, sampled]
    )
    surprised.then(drawn, inputs=[x, y, sampled], outputs=[dream, where])

    def clicked(event):
        return on_map_click(ref, event)

    clicked.__annotations__ = {"event": gr.SelectData}  # how Gradio knows to pass the click
    where.select(clicked, inputs=None, outputs=[x, y])


def _interpolate_tab(gr, ref: sb.Reference) -> None:
    with gr.Row():
        start = _sketchpad(gr, "from this drawing", "from")
        end = _sketchpad(gr, "to this one", "to")
    with gr.Row():
        source = gr.Radio(["drawn", "from the data"], value="drawn", label="drawings")
        n = 0 if ref.images is None else len(ref.images) - 1
        first = gr.Number(0, label=f"first (0-{n})", precision=0)
        last = gr.Number(min(1, n), label=f"last (0-{n})", precision=0)
        steps = gr.Slider(2, 16, value=STEPS, step=1, label="steps")
        button = gr.Button("Interpolate", elem_id="interpolate")
    path = _image(gr, "the path between their codes", "path")
    note = gr.Markdown(elem_id="path-note")
    button.click(
        lambda *a: on_interpolate(ref, *a), inputs=[start, end, source, first, last, steps], outputs=[path, note]
    )


def serve(
    run_dir: str | Path,
    data: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    on_ready: Callable[[str], None] = print,
) -> None:
    """Load the model and its reference drawings, serve the page, call ``on_ready(url)``, and
    block until Ctrl-C."""
    gr = _gradio()
    page = build(sb.load_reference(run_dir, data))
    try:
        page.launch(
            server_name=host,
            server_port=port,
            theme=gr.themes.Default(),  # fonts shipped with Gradio: nothing loaded from the internet
            ssr_mode=False,
            footer_links=[],
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as e:  # the port is taken, or the host is not this machine's
        raise SheepError(f"cannot serve the app on {host}:{port} ({e})") from None
    on_ready(f"http://{host}:{port}/")
    try:
        page.block_thread()
    finally:
        page.close()
