"""The downloader against a real HTTP server on 127.0.0.1, including an interrupted transfer."""

from __future__ import annotations

import http.server
import io
import json
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from electric_sheep.cli import main
from electric_sheep.data import drawings as data
from electric_sheep.data.download import category_url, download
from electric_sheep.errors import DownloadError


class _Server(http.server.ThreadingHTTPServer):
    payloads: dict[str, bytes]
    cut_first: bool = False  # drop the connection half-way through the first full transfer
    requests: list[str | None]


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv: _Server = self.server  # type: ignore[assignment]
        body = srv.payloads.get(self.path)
        srv.requests.append(self.headers.get("Range"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if srv.cut_first and not rng:
            srv.cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).integers(0, 256, (300, 784), dtype=np.uint8))
    srv.payloads = {
        "/full/numpy_bitmap/sheep.npy": buf.getvalue(),
        "/full/numpy_bitmap/cat.npy": b"<!DOCTYPE html><html>quota exceeded</html>",
    }
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _base(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_download_complete_file(tmp_path, server):
    path = download("sheep", "bitmap", tmp_path, base_url=_base(server), progress=False)
    assert path == data.cached_category_path("sheep", "bitmap", tmp_path)
    assert path.read_bytes() == server.payloads["/full/numpy_bitmap/sheep.npy"]
    assert data.load_drawings("sheep", cache_dir=tmp_path).images.shape == (300, 28, 28)
    # Already there: no second request.
    download("sheep", "bitmap", tmp_path, base_url=_base(server), progress=False)
    assert len(server.requests) == 1


def test_interrupted_transfer_resumes_with_range(tmp_path, server):
    server.cut_first = True
    with pytest.raises(DownloadError, match="interrupted"):
        download("sheep", "bitmap", tmp_path, base_url=_base(server), progress=False)
    target = data.cached_category_path("sheep", "bitmap", tmp_path)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size
    assert not target.exists() and 0 < have < len(server.payloads["/full/numpy_bitmap/sheep.npy"])
    path = download("sheep", "bitmap", tmp_path, base_url=_base(server), progress=False)
    assert server.requests[-1] == f"bytes={have}-"  # asked only for the missing bytes
    assert path.read_bytes() == server.payloads["/full/numpy_bitmap/sheep.npy"] and not part.exists()


def test_bad_content_is_rejected_and_not_kept(tmp_path, server):
    with pytest.raises(DownloadError, match="HTML page"):
        download("cat", "bitmap", tmp_path, base_url=_base(server), progress=False)
    target = data.cached_category_path("cat", "bitmap", tmp_path)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_unreachable_server_says_which_url_and_where_to_put_the_file(tmp_path, server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(DownloadError) as e:
        download("sheep", "bitmap", tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False, timeout=2)
    msg = str(e.value)
    assert f"http://127.0.0.1:{port}/full/numpy_bitmap/sheep.npy" in msg
    assert str(data.cached_category_path("sheep", "bitmap", tmp_path)) in msg


def test_official_urls():
    assert (
        category_url("The Eiffel Tower", "simplified", "https://x")
        == "https://x/full/simplified/The%20Eiffel%20Tower.ndjson"
    )
    assert category_url("sheep", "sketchrnn", "https://x") == "https://x/sketchrnn/sheep.npz"


def test_a_hostile_mirror_cannot_run_code(tmp_path, server):
    """A sketch-rnn file whose arrays would unpickle into a call is refused, and not kept."""
    from test_hostile_input import _evil_npz

    marker = tmp_path / "pwned"
    server.payloads["/sketchrnn/sheep.npz"] = _evil_npz(tmp_path / "evil.npz", marker, "element").read_bytes()
    with pytest.raises(DownloadError, match="would need pickle to read"):
        download("sheep", "sketchrnn", tmp_path / "cache", base_url=_base(server), progress=False)
    assert not marker.exists() and not data.cached_category_path("sheep", "sketchrnn", tmp_path / "cache").exists()


def test_several_categories_in_one_command(tmp_path, server, monkeypatch):
    """`sheep download sheep dog`: a misspelt name stops it before any request; a file that fails
    leaves the ones fetched before it in the cache; each file is fetched once."""
    for name in ("dog", "duck"):
        server.payloads[f"/full/numpy_bitmap/{name}.npy"] = server.payloads["/full/numpy_bitmap/sheep.npy"]
    monkeypatch.setenv("ELECTRIC_SHEEP_BASE_URL", _base(server))
    run = CliRunner()
    bad = run.invoke(main, ["download", "sheep", "dgo", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and "'dog'" in bad.output and server.requests == []
    res = run.invoke(main, ["download", "sheep", "Dog", "sheep", "--dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    paths = {c: str(data.cached_category_path(c, "bitmap", tmp_path)) for c in ("sheep", "dog")}
    found = [{"path": paths[c], "category": c, "format": "bitmap"} for c in ("sheep", "dog")]
    assert json.loads(res.stdout) == found and len(server.requests) == 2
    failed = run.invoke(main, ["download", "duck", "cat", "--dir", str(tmp_path)])
    assert failed.exit_code == 2 and "cat.npy" in failed.output and "HTML page" in failed.output
    assert data.cached_category_path("duck", "bitmap", tmp_path).is_file()
    assert not data.cached_category_path("cat", "bitmap", tmp_path).exists()
    one = run.invoke(main, ["download", "sheep", "--dir", str(tmp_path), "--json"])  # already there: no request
    assert json.loads(one.stdout) == found[0] and len(server.requests) == 4
