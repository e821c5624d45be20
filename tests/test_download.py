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

from realtime import cli
from realtime.download import (
    MIRROR_ENV,
    NEURAL_NOTICE,
    ProgressBar,
    Remote,
    download,
    fetch_neural,
    file_sha256,
    neural_entries,
)
from realtime.errors import ModelError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, position-dependent so a wrong splice changes the hash
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _State:
    """What the test server does and what it saw."""

    def __init__(self) -> None:
        self.break_after: list[int] = []  # per GET, in order: stop the body after this many bytes
        self.honour_range = True
        self.status: int | None = None  # force an error status
        self.fail_first: list[int] = []  # error statuses for the first requests, in order
        self.ranges: list[str | None] = []


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: object) -> None:  # silence the test output
        pass

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        header = self.headers.get("Range")
        state.ranges.append(header)
        if state.status is not None or state.fail_first:
            self.send_error(state.fail_first.pop(0) if state.fail_first else state.status)
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
    assert file_sha256(dest) == PAYLOAD_SHA


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


def test_server_error_is_retried_after_a_pause(server: tuple[str, _State], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = server
    monkeypatch.setattr("realtime.download.RETRY_PAUSE_S", 0.01)
    state.fail_first = [503]
    download(Remote(url, PAYLOAD_SHA), tmp_path / "model.onnx", progress=io.StringIO(), attempts=2)
    assert state.ranges == [None, None]
    assert (tmp_path / "model.onnx").read_bytes() == PAYLOAD


# ---------------------------------------------------------------- the neural models


def test_manifest_pins_the_four_neural_files() -> None:
    entries = neural_entries()
    assert {e["file"] for e in entries.values()} == {"inswapper_128.fp16.onnx", "w600k_r50.onnx", "det_10g.onnx",
                                                     "GFPGANv1.4.onnx"}
    for entry in entries.values():
        assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
        assert entry["url"].startswith("https://") and entry["url"].endswith("/" + entry["file"])
        assert "non-commercial" in entry["licence"]
    assert "NON-COMMERCIAL" in NEURAL_NOTICE


def test_fetch_neural_downloads_checks_and_skips_what_is_there(server: tuple[str, _State], tmp_path: Path) -> None:
    url, state = server
    entries = {"one": {"url": url, "sha256": PAYLOAD_SHA, "file": "one.onnx"},
               "two": {"url": url, "sha256": PAYLOAD_SHA, "file": "two.onnx"}}
    assert fetch_neural(tmp_path, entries=entries, progress=io.StringIO()) == ["one", "two"]
    assert (tmp_path / "one.onnx").read_bytes() == PAYLOAD == (tmp_path / "two.onnx").read_bytes()
    assert fetch_neural(tmp_path, entries=entries, progress=io.StringIO()) == []
    assert len(state.ranges) == 2


def test_fetch_neural_offline_gives_the_manual_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}/mirror/")
    with pytest.raises(ModelError) as info:
        fetch_neural(tmp_path, progress=io.StringIO(), timeout_s=2)
    assert info.value.code == "E16"
    assert f"127.0.0.1:{port}/mirror/inswapper_128.fp16.onnx" in info.value.detail  # the mirror was used
    for entry in neural_entries().values():  # every file, its release URL and the folder to put it in
        assert f"{entry['file']} from {entry['url']}" in info.value.remedy
    assert str(tmp_path) in info.value.remedy
    assert list(tmp_path.iterdir()) == []


def test_cli_models_fetch_neural_offline(models_root: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``swapcam models fetch --neural`` without network: licence notice, then E16 with the instructions."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SWAPCAM_MODELS", str(models_root))
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", "fetch", "--neural", "--no-samples"])
    assert exit_info.value.code == 3
    out, err = capsys.readouterr()
    assert "NON-COMMERCIAL" in out
    assert "error: E16" in err and "download by hand into" in err and "GFPGANv1.4.onnx from https://" in err
