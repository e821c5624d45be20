"""realtime.download against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from realtime.download import ProgressBar, Remote, download, sha256_of
from realtime.errors import ModelError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, position-dependent so a wrong splice changes the hash
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _State:
    """What the test server does and what it saw."""

    def __init__(self) -> None:
        self.break_after: list[int] = []  # per GET, in order: stop the body after this many bytes
        self.honour_range = True
        self.status: int | None = None  # force an error status
        self.ranges: list[str | None] = []


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: object) -> None:  # silence the test output
        pass

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        header = self.headers.get("Range")
        state.ranges.append(header)
        if state.status is not None:
            self.send_error(state.status)
            return
        start = 0
        if header and state.honour_range:
            start = int(header.split("=", 1)[1].split("-", 1)[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = state.break_after.pop(0) if state.break_after else None
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, _State]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/model.onnx", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_download_verifies_and_renames(server: tuple[str, _State], tmp_path: Path) -> None:
    url, state = server
    dest = tmp_path / "models" / "model.onnx"
    progress = io.StringIO()
    assert download(Remote(url, PAYLOAD_SHA), dest, progress=progress, chunk=64 * 1024) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("model.onnx.part").exists()
    assert state.ranges == [None]
    lines = progress.getvalue().splitlines()
    assert lines[-1].startswith("model.onnx  1.0/1.0 MB  100.0 %"), lines
    # Present with the right hash: no second request.
    download(Remote(url, PAYLOAD_SHA), dest, progress=progress)
    assert state.ranges == [None]


def test_interrupted_transfer_is_resumed_by_the_next_call(server: tuple[str, _State], tmp_path: Path) -> None:
    url, state = server
    dest = tmp_path / "model.onnx"
    part = tmp_path / "model.onnx.part"
    state.break_after = [300_000]
    with pytest.raises(ModelError) as info:
        download(Remote(url, PAYLOAD_SHA), dest, progress=io.StringIO(), attempts=1, chunk=4096)
    assert info.value.code == "E16"
    assert "run the command again to resume" in str(info.value)
    assert part.stat().st_size == 300_000 and not dest.exists()
    download(Remote(url, PAYLOAD_SHA), dest, progress=io.StringIO(), chunk=4096)
    assert state.ranges == [None, "bytes=300000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_broken_transfer_is_retried_with_range_in_one_call(server: tuple[str, _State], tmp_path: Path) -> None:
    url, state = server
    dest = tmp_path / "model.onnx"
    state.break_after = [100_000, 200_000]
    download(Remote(url, PAYLOAD_SHA), dest, progress=io.StringIO(), attempts=3, chunk=4096)
    assert state.ranges == [None, "bytes=100000-", "bytes=300000-"]
    assert sha256_of(dest) == PAYLOAD_SHA


def test_server_without_range_support_starts_over(server: tuple[str, _State], tmp_path: Path) -> None:
    url, state = server
    state.honour_range = False
    dest = tmp_path / "model.onnx"
    (tmp_path / "model.onnx.part").write_bytes(b"x" * 5000)  # stale bytes that must not survive
    download(Remote(url, PAYLOAD_SHA), dest, progress=io.StringIO())
    assert state.ranges == ["bytes=5000-"]
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_is_E07_and_removes_the_partial_file(server: tuple[str, _State], tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "model.onnx"
    with pytest.raises(ModelError) as info:
        download(Remote(url, "0" * 64), dest, progress=io.StringIO())
    assert info.value.code == "E07"
    assert PAYLOAD_SHA in str(info.value)
    assert not dest.exists() and not (tmp_path / "model.onnx.part").exists()


def test_wrong_file_already_present_is_replaced(server: tuple[str, _State], tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"not the model")
    download(Remote(url, PAYLOAD_SHA), dest, progress=io.StringIO())
    assert dest.read_bytes() == PAYLOAD


def test_unreachable_server_is_E16(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ModelError) as info:
        download(Remote(f"http://127.0.0.1:{port}/x.onnx", PAYLOAD_SHA), tmp_path / "x.onnx",
                 progress=io.StringIO(), attempts=2, timeout_s=2)
    assert info.value.code == "E16" and "cannot reach the server" in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


def test_http_404_is_E16_without_retry(server: tuple[str, _State], tmp_path: Path) -> None:
    url, state = server
    state.status = 404
    with pytest.raises(ModelError) as info:
        download(Remote(url, PAYLOAD_SHA), tmp_path / "model.onnx", progress=io.StringIO())
    assert info.value.code == "E16" and "HTTP 404" in str(info.value)
    assert state.ranges == [None]


def test_progress_bar_text() -> None:
    stream = io.StringIO()
    bar = ProgressBar("w600k_r50.onnx", 200_000_000, stream=stream)
    for done in range(0, 200_000_001, 5_000_000):
        bar.update(done)
    bar.finish(200_000_000)
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 12  # one per 10 % when not on a terminal, plus the final line
    assert "200.0/200.0 MB  100.0 %" in lines[-1]
