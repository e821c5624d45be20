"""Live settings, add/remove sinks at run time, saved settings and --config (no server)."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import pytest

from realtime.cli import build_parser
from realtime.config import PipelineConfig
from realtime.control.config_file import apply_config
from realtime.control.recording import recording_path
from realtime.control.session import LiveSession
from realtime.control.settings import LiveOptions, LiveSettings, LiveState, apply_changes, restore
from realtime.control.store import Folders, load_saved
from realtime.errors import SwapcamError, UsageError
from realtime.models import sample_path
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sinks.null import NullSink
from realtime.sources.synthetic import SyntheticSource


def test_apply_changes_validates_keys_types_and_ranges() -> None:
    options = apply_changes(LiveOptions(), {"swap": False, "feather": 0, "face_index": 2})
    assert options.swap is False and options.feather == 0.0 and isinstance(options.feather, float)
    for bad in ({"nope": 1}, {"feather": 0.9}, {"max_faces": 1.5}, {"keep_mouth": 1}, {"swapper": "gan"}):
        with pytest.raises(UsageError) as caught:
            apply_changes(LiveOptions(), bad)
        assert caught.value.code == "E01"


def test_a_failed_change_keeps_the_current_state() -> None:
    settings = LiveSettings(LiveState(options=LiveOptions()))
    before = settings.current

    def failing(old: LiveState, options: LiveOptions) -> LiveState:
        raise UsageError("E05", "no face")

    with pytest.raises(SwapcamError):
        settings.change({"swap": False}, failing)
    assert settings.current is before
    settings.change({"swap": False}, lambda old, options: LiveState(options=options))
    assert settings.current.options.swap is False


def test_readers_never_wait_for_a_slow_preparation() -> None:
    settings = LiveSettings(LiveState(options=LiveOptions()))
    release = threading.Event()

    def slow(old: LiveState, options: LiveOptions) -> LiveState:
        release.wait(5)
        return LiveState(options=options)

    writer = threading.Thread(target=settings.change, args=({"max_faces": 2}, slow))
    writer.start()
    started = time.perf_counter()
    reads = [settings.current.options.max_faces for _ in range(1000)]
    assert time.perf_counter() - started < 0.5 and set(reads) == {1}
    release.set()
    writer.join(5)
    assert settings.current.options.max_faces == 2


def test_restore_skips_stale_or_broken_saved_values() -> None:
    options = restore({"keep_eyes": True, "max_faces": -3, "gone": 1, "color_match": 0.5}, LiveOptions())
    assert options.keep_eyes is True and options.max_faces == 1 and options.color_match == 0.5


def test_recording_names_never_leave_the_folder(tmp_path: Path) -> None:
    assert recording_path(tmp_path, "take1.mp4") == tmp_path / "take1.mp4"
    assert recording_path(tmp_path, None).parent == tmp_path
    for bad in ("../x.mp4", "/tmp/x.mp4", "a/b.mp4", "x.txt", "..", "a\\b.mp4"):
        with pytest.raises(UsageError):
            recording_path(tmp_path, bad)


def test_sinks_can_be_added_and_removed_while_running() -> None:
    kept, extra = NullSink(), NullSink()
    closed = threading.Event()
    extra.close = closed.set  # type: ignore[method-assign]
    pipeline = Pipeline(source=SyntheticSource(width=64, height=48, fps=100), processor=Passthrough(),
                        sinks=[kept], config=PipelineConfig())
    pipeline.start()
    try:
        deadline = time.perf_counter() + 5
        while kept.written < 5 and time.perf_counter() < deadline:
            time.sleep(0.01)
        pipeline.add_sink(extra)
        while extra.written < 5 and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert extra.written >= 5
        pipeline.remove_sink(extra)
        assert closed.is_set()
        written, before = extra.written, kept.written
        time.sleep(0.2)
        assert extra.written == written and kept.written > before
    finally:
        pipeline.stop()


# ------------------------------------------------------------------ --config and saved settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is not None:
        args = apply_config(parser, argv, args)
    return args


def test_the_panel_defaults_to_loopback_port_8750_and_a_random_token() -> None:
    args = parse(["run", "--panel"])
    assert args.panel_host == "127.0.0.1" and args.panel_port == 8750 and args.panel_token is None


def test_config_file_gives_run_options_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "swapcam.toml"
    config.write_text('face = ["me.jpg"]\nmax-faces = 2\nkeep_mouth = false\noutput = ["null", "file:o.mp4"]\n'
                      'panel = true\npanel-port = 9000\nfps = 25\n', encoding="utf-8")
    args = parse(["run", "--config", str(config)])
    assert args.face == [Path("me.jpg")] and args.max_faces == 2 and args.keep_mouth is False
    assert args.output == ["null", "file:o.mp4"] and args.panel is True and args.panel_port == 9000
    assert args.fps == 25.0
    args = parse(["run", "--config", str(config), "--max-faces", "3", "--keep-mouth", "--panel-port", "9100"])
    assert args.max_faces == 3 and args.keep_mouth is True and args.panel_port == 9100


@pytest.mark.parametrize("text", ["max-faces = \"two\"\n", "nosuch = 1\n", "panel = 1\n", "swapper = \"gan\"\n",
                                  "max-faces = [\n"])
def test_a_bad_config_file_is_e26(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        parse(["run", "--config", str(config)])
    assert caught.value.code == "E26"


def test_live_settings_are_saved_and_restored_at_the_next_start(tmp_path: Path, models_root: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPCAM_MODELS", str(models_root))
    folders = Folders(config=tmp_path / "config", data=tmp_path / "data")
    gauss, newton = sample_path("gauss.png", root=models_root), sample_path("newton.png", root=models_root)
    args = parse(["run", "--face", str(gauss), "--swapper", "mesh", "--panel-token", "dock-token"])
    first = LiveSession.create(args, args.plain_defaults, folders)
    newton_id = first.controller.add_file(newton).id
    first.controller.change({"face": newton_id, "keep_eyes": True, "color_match": 0.25})
    first.processor.close()
    saved = load_saved(folders.settings)
    assert saved["live"]["face"] == newton_id and saved["panel_token"] == "dock-token"
    # Next start, no --face: the gallery and the last settings come back (the token too).
    args = parse(["run", "--swapper", "mesh"])
    second = LiveSession.create(args, args.plain_defaults, folders)
    try:
        options = second.controller.options
        assert options.face == newton_id and options.keep_eyes is True and options.color_match == 0.25
        assert len(second.controller.gallery.list()) == 2 and second.token == "dock-token"
        assert second.controller.settings.current.swapper is not None
    finally:
        second.processor.close()
    # A flag given on the command line wins over the saved value.
    args = parse(["run", "--swapper", "mesh", "--max-faces", "2", "--panel-token", "random"])
    third = LiveSession.create(args, args.plain_defaults, folders)
    try:
        assert third.controller.options.max_faces == 2 and third.token is None
    finally:
        third.processor.close()


def test_color_match_strength_moves_the_mesh_swap_between_off_and_full(models_root: Path) -> None:
    import numpy as np

    from realtime.faces.analyzer import FaceAnalyzer
    from realtime.images import load_image
    from realtime.swappers.mesh import MeshSwapOptions, MeshSwapper

    analyzer = FaceAnalyzer.open(root=models_root, backend="onnxruntime", device="cpu", threads=1)
    source = load_image(sample_path("gauss.png", root=models_root), max_side=640)
    target = load_image(sample_path("newton.png", root=models_root), max_side=640)
    source_face, target_face = analyzer.analyze_still(source)[0], analyzer.analyze_still(target)[0]

    def swapped(**options: object) -> np.ndarray:
        swapper = MeshSwapper(options=MeshSwapOptions(**options))  # type: ignore[arg-type]
        swapper.prepare(source, source_face)
        out = target.copy()
        swapper.swap(out, target_face)
        x0, y0, x1, y1 = (int(v) for v in target_face.box)
        return out[max(0, y0):y1, max(0, x0):x1].astype(np.float32)  # the face region

    off, full = swapped(color_match=False), swapped()
    half, none = swapped(color_strength=0.5), swapped(color_strength=0.0)
    span = np.abs(full - off).mean()
    assert span > 1.0
    assert np.abs(none - off).mean() < 0.1 * span  # strength 0 is colour matching off (up to Lab rounding)
    assert np.abs(half - off).mean() < 0.8 * span and np.abs(half - full).mean() < 0.8 * span
