"""The panel's HTTP API and its security, against a real server on 127.0.0.1 and a real live pipeline."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from panel_helpers import TOKEN, Harness, face_box, multipart, nearest, reference_swaps, start_harness

from realtime.control.gallery import MAX_UPLOAD_BYTES
from realtime.control.server import PanelServer
from realtime.errors import OutputError
from realtime.priority import is_lowered


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory, models_root: Path,
          sample: Callable[[str], Path]) -> Iterator[Harness]:
    harness = start_harness(tmp_path_factory.mktemp("panel"), models_root, sample,
                            faces=("gauss.png", "solvay_conference_1927.jpg"))
    yield harness
    harness.stop()


def open_preview(panel: Harness, path: str = "/api/preview.mjpg",
                 ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, bytes]:
    """A preview stream left open, with what it sent until two whole JPEGs had come (close ``conn``)."""
    conn = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    response = conn.getresponse()
    data = b""
    while data.count(b"\xff\xd9") < 2:
        data += response.read1(65536)
    return conn, response, data


def first_jpeg(data: bytes) -> np.ndarray:
    """The first whole JPEG in a preview stream's bytes, decoded."""
    start = data.index(b"\xff\xd8")
    return cv2.imdecode(np.frombuffer(data[start:data.index(b"\xff\xd9", start) + 2], np.uint8), cv2.IMREAD_COLOR)


def png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


# ------------------------------------------------------------------ endpoints


def test_status_reports_live_figures_face_and_outputs(panel: Harness) -> None:
    panel.capture.after(panel.capture.latest_seq() + 3)
    status, body, _ = panel.request("GET", "/api/status")
    assert status == 200
    assert body["fps"]["out"] > 0 and body["fps"]["in"] > 0
    assert set(body["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(body["drops"]) == {"capture", "output"}
    assert "landmarks" in body["stages_ms"]
    assert body["swap"] is True and body["face"]["id"] == panel.controller.options.face
    assert body["outputs"] == ["capture"]  # the preview slot is not listed as an output


def test_settings_get_and_patch(panel: Harness) -> None:
    status, settings, _ = panel.request("GET", "/api/settings")
    assert status == 200 and settings["swap"] is True and settings["swapper"] == "mesh"
    status, changed, _ = panel.request("PATCH", "/api/settings", json.dumps({"keep_eyes": True}).encode())
    assert status == 200 and changed["keep_eyes"] is True
    assert panel.controller.options.keep_eyes is True
    panel.request("PATCH", "/api/settings", json.dumps({"keep_eyes": False}).encode())


@pytest.mark.parametrize(("changes", "code"), [
    ({"max_faces": 0}, "E01"), ({"color_match": 2}, "E01"), ({"swap": "no"}, "E01"),
    ({"max_faces": True}, "E01"), ({"no_such_key": 1}, "E01"), ({"face": "000000000000"}, "E24"),
    ({"face_index": 5}, "E01"),  # valid alone, but the live photo has no 6th face: its preparation fails
])
def test_bad_settings_get_400_with_the_coded_line_and_change_nothing(panel: Harness, changes: dict[str, object],
                                                                      code: str) -> None:
    before = panel.controller.options
    status, body, _ = panel.request("PATCH", "/api/settings", json.dumps(changes).encode())
    assert status == 400
    assert body["code"] == code and body["error"].startswith(f"{code} ") and " — " in body["error"]
    assert panel.controller.options == before


def test_max_faces_reaches_the_tracker_on_the_next_frame(panel: Harness) -> None:
    panel.request("PATCH", "/api/settings", json.dumps({"max_faces": 3}).encode())
    try:
        panel.frame_after_change()
        assert panel.analyzer.options.max_faces == 3
    finally:
        panel.request("PATCH", "/api/settings", json.dumps({"max_faces": 1}).encode())
    panel.frame_after_change()
    assert panel.analyzer.options.max_faces == 1


def test_patch_body_that_is_not_json_gets_400(panel: Harness) -> None:
    status, body, _ = panel.request("PATCH", "/api/settings", b"swap=false")
    assert status == 400 and body["code"] == "E01"


def test_face_switch_by_id_changes_the_output_frames(panel: Harness, sample: Callable[[str], Path]) -> None:
    refs = reference_swaps({"gauss.png": sample("gauss.png"), "solvay_conference_1927.jpg":
                            sample("solvay_conference_1927.jpg")}, panel.source.base, panel.analyzer)
    box = face_box(panel)
    for name in ("solvay_conference_1927.jpg", "gauss.png"):
        status, settings, _ = panel.request("PATCH", "/api/settings", json.dumps({"face": panel.faces[name]}).encode())
        assert status == 200 and settings["face"] == panel.faces[name]
        _, image = panel.frame_after_change()
        assert nearest(image, refs, box) == name


def test_swap_off_passes_frames_through_untouched(panel: Harness) -> None:
    panel.request("PATCH", "/api/settings", json.dumps({"swap": False}).encode())
    try:
        seq, image = panel.frame_after_change()
        assert np.array_equal(image, panel.source.expected(seq))
    finally:
        panel.request("PATCH", "/api/settings", json.dumps({"swap": True}).encode())
    seq, image = panel.frame_after_change()
    assert not np.array_equal(image, panel.source.expected(seq))


def test_faces_upload_list_thumbnail_delete(panel: Harness, sample: Callable[[str], Path]) -> None:
    data = sample("newton.png").read_bytes()
    body, kind = multipart("file", "newton.png", data)
    status, added, _ = panel.request("POST", "/api/faces", body, {"Content-Type": kind})
    assert status == 201 and len(added["id"]) == 12
    status, faces, _ = panel.request("GET", "/api/faces")
    assert added["id"] in [f["id"] for f in faces]
    status, thumb, headers = panel.request("GET", f"/api/faces/{added['id']}/thumb")
    assert status == 200 and headers["content-type"] == "image/jpeg" and thumb[:2] == b"\xff\xd8"
    # The same photo as a raw body: the same id, not a second copy.
    status, again, _ = panel.request("POST", "/api/faces", data, {"Content-Type": "image/png"})
    assert status == 201 and again["id"] == added["id"] and again["new"] is False
    status, _, _ = panel.request("DELETE", f"/api/faces/{added['id']}")
    assert status == 200
    _, faces, _ = panel.request("GET", "/api/faces")
    assert added["id"] not in [f["id"] for f in faces]
    status, body, _ = panel.request("DELETE", f"/api/faces/{added['id']}")
    assert status == 400 and body["code"] == "E24"


def test_the_live_face_cannot_be_deleted(panel: Harness) -> None:
    status, body, _ = panel.request("DELETE", f"/api/faces/{panel.controller.options.face}")
    assert status == 400 and body["code"] == "E01"


def test_a_photo_without_a_face_gets_e05(panel: Harness) -> None:
    blank = np.full((200, 200, 3), 128, np.uint8)
    body, kind = multipart("file", "blank.png", png_bytes(blank))
    status, body, _ = panel.request("POST", "/api/faces", body, {"Content-Type": kind})
    assert status == 400 and body["code"] == "E05"
    assert "blank.png" in body["error"] and ".tmp" not in body["error"]
    assert not list((panel.folder / "faces").glob("*.tmp"))


def test_recording_start_stop_gives_a_playable_file(panel: Harness) -> None:
    status, started, _ = panel.request("POST", "/api/recording", json.dumps({"action": "start"}).encode())
    assert status == 200 and started["recording"] is True
    panel.capture.after(panel.capture.latest_seq() + 15)
    status, stopped, _ = panel.request("POST", "/api/recording", json.dumps({"action": "stop"}).encode())
    assert status == 200 and stopped["recording"] is False and stopped["bytes"] > 0
    path = Path(stopped["path"])
    assert path.parent == panel.folder / "recordings"
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 10
    assert "capture" in [s.name for s in panel.pipeline.sinks]  # the other outputs stayed


def test_recording_refuses_a_path_and_a_bad_action(panel: Harness) -> None:
    status, body, _ = panel.request("POST", "/api/recording",
                                    json.dumps({"action": "start", "path": "../escape.mp4"}).encode())
    assert status == 400 and body["code"] == "E01"
    status, body, _ = panel.request("POST", "/api/recording", json.dumps({"action": "rewind"}).encode())
    assert status == 400
    assert not panel.recorder.active


def test_preview_streams_jpeg_frames(panel: Harness) -> None:
    conn, response, data = open_preview(panel)
    conn.close()
    assert response.status == 200 and response.getheader("content-type").startswith("multipart/x-mixed-replace")
    image = first_jpeg(data)
    assert image is not None and image.shape[1] == panel.source.width  # narrower than 640: sent as is


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the Linux scheduling policy of each thread")
def test_the_panel_serves_and_encodes_on_lowered_threads_and_the_frame_threads_are_not_lowered(panel: Harness) -> None:
    conn, _, _ = open_preview(panel)
    threads = {thread.native_id: thread.name for thread in threading.enumerate() if thread.native_id is not None}
    conn.close()
    lowered = {name for tid, name in threads.items() if is_lowered(tid)}
    assert "swapcam-panel" in lowered
    assert any(name.startswith("AnyIO") for name in lowered)  # the preview's JPEGs are encoded there
    assert not lowered & {"swapcam-capture", "swapcam-inference", "swapcam-output", "MainThread"}


def test_the_input_preview_is_copied_only_while_watched(panel: Harness) -> None:
    assert panel.processor.preview is not None and panel.processor.preview.input_watchers == 0
    conn, _, data = open_preview(panel, "/api/preview.mjpg?which=input&width=240")
    assert panel.processor.preview.input_watchers == 1
    conn.close()
    image = first_jpeg(data)
    assert image.shape[1] == 240
    deadline = time.perf_counter() + 5
    while panel.processor.preview.input_watchers and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert panel.processor.preview.input_watchers == 0


def test_events_push_status_several_times_a_second(panel: Harness) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=10)
    conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {TOKEN}"})
    response = conn.getresponse()
    assert response.getheader("content-type").startswith("text/event-stream")
    started, events = time.perf_counter(), []
    buffer = b""
    while len(events) < 3:
        buffer += response.read1(65536)
        *done, buffer = buffer.split(b"\n\n")
        events += [json.loads(chunk.removeprefix(b"data: ")) for chunk in done if chunk.startswith(b"data: ")]
    conn.close()
    assert time.perf_counter() - started < 1.5  # ≥ 2 per second
    assert events[-1]["fps"]["out"] > 0 and "latency_ms" in events[-1]


def test_page_and_static_files_are_served_locally(panel: Harness) -> None:
    status, page, _ = panel.request("GET", "/")
    assert status == 200 and b"/static/panel.js" in page
    for name in ("panel.js", "panel.css"):
        status, data, _ = panel.request("GET", f"/static/{name}")
        assert status == 200 and data
    assert b"http" not in page.replace(b"http-equiv", b"")  # no CDN: nothing loaded from elsewhere
    status, _, _ = panel.request("GET", "/static/..%2fserver.py")
    assert status == 404


# ------------------------------------------------------------------ security


def test_no_token_or_a_wrong_token_gets_401(panel: Harness) -> None:
    for path in ("/api/status", "/", "/api/preview.mjpg", "/static/panel.js"):
        assert panel.request("GET", path, token=False)[0] == 401
    assert panel.request("GET", "/api/status", headers={"Authorization": "Bearer wrong"}, token=False)[0] == 401
    assert panel.request("GET", "/api/status", headers={"Cookie": "swapcam_token=wrong"}, token=False)[0] == 401
    status, _, _ = panel.request("PATCH", "/api/settings", b'{"swap": false}', token=False)
    assert status == 401 and panel.controller.options.swap is True


def test_opening_the_url_sets_a_strict_httponly_cookie_that_then_works(panel: Harness) -> None:
    status, _, headers = panel.request("GET", f"/?token={TOKEN}", token=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"swapcam_token={TOKEN}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert panel.request("GET", "/api/status", headers={"Cookie": f"swapcam_token={TOKEN}"}, token=False)[0] == 200


def test_a_foreign_host_header_gets_403(panel: Harness) -> None:
    for host in (f"evil.example:{panel.port}", "127.0.0.1:1", "attacker.test"):
        status, body, _ = panel.request("GET", "/api/status", headers={"Host": host})
        assert status == 403 and "Host" in body["error"]
    assert panel.request("GET", "/api/status", headers={"Host": f"localhost:{panel.port}"})[0] == 200


def test_a_state_change_from_a_foreign_origin_gets_403(panel: Harness) -> None:
    body = json.dumps({"swap": False}).encode()
    status, _, _ = panel.request("PATCH", "/api/settings", body, {"Origin": "http://evil.example"})
    assert status == 403 and panel.controller.options.swap is True
    status, _, _ = panel.request("POST", "/api/recording", b'{"action": "start"}', {"Origin": "null"})
    assert status == 403 and not panel.recorder.active
    same = {"Origin": f"http://127.0.0.1:{panel.port}"}
    assert panel.request("PATCH", "/api/settings", json.dumps({"swap": True}).encode(), same)[0] == 200


def test_an_oversized_upload_gets_413(panel: Harness) -> None:
    big = b"\x89PNG" + b"\0" * (MAX_UPLOAD_BYTES + 200_000)
    status, body, _ = panel.request("POST", "/api/faces", big, {"Content-Type": "image/png"})
    assert status == 413 and body["code"] == "E03"
    # Chunked, with no Content-Length to refuse up front: cut off while reading.
    conn = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=30)
    chunks = (b"\0" * 1_000_000 for _ in range(22))
    conn.request("POST", "/api/faces", body=chunks, encode_chunked=True,
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"})
    assert conn.getresponse().status == 413
    conn.close()
    assert not list((panel.folder / "faces").glob("*.tmp"))


def test_a_non_image_upload_gets_e03(panel: Harness) -> None:
    body, kind = multipart("file", "notes.png", b"this is not an image at all", "image/png")
    status, answer, _ = panel.request("POST", "/api/faces", body, {"Content-Type": kind})
    assert status == 400 and answer["code"] == "E03"


def test_a_path_like_file_name_is_never_used_as_a_path(panel: Harness, sample: Callable[[str], Path]) -> None:
    name = "../../../outside/evil.png"
    body, kind = multipart("file", name, sample("newton.png").read_bytes())
    status, added, _ = panel.request("POST", "/api/faces", body, {"Content-Type": kind})
    assert status == 201 and added["name"] == "evil.png"
    stored = sorted(p.name for p in (panel.folder / "faces").iterdir())
    assert f"{added['id']}.img" in stored and "evil.png" not in stored
    assert not (panel.folder / "outside").exists() and not (panel.folder.parent / "outside").exists()
    panel.request("DELETE", f"/api/faces/{added['id']}")


def test_the_server_binds_loopback_by_default_and_tokens_differ_per_run() -> None:
    first, second = PanelServer(port=0), PanelServer(port=0)
    try:
        assert first._socket.getsockname()[0] == "127.0.0.1"
        assert first.token != second.token and len(first.token) >= 20
    finally:
        first.close()
        second.close()


def test_a_taken_port_is_e25(panel: Harness) -> None:
    with pytest.raises(OutputError) as caught:
        PanelServer(port=panel.port)
    assert caught.value.code == "E25"
