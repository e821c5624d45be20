"""``swapcam swap`` on photos and videos, and ``swapcam run --face`` end to end (real models)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime import cli, models
from realtime.commands import processing
from realtime.errors import ModelError
from realtime.images import load_image
from realtime.models import sample_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import render_demo_clip

CLIP_SIZE = (480, 270)
CLIP_FPS = 20.0


def swapcam(*argv: str) -> int:
    """Run the CLI in-process; its exit status."""
    with pytest.raises(SystemExit) as exited:
        cli.main([str(a) for a in argv])
    return int(exited.value.code or 0)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def audio_seconds(path: Path) -> float | None:
    """Decoded audio duration, or None without an audio stream."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return samples / container.streams.audio[0].codec_context.sample_rate


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    width, height = CLIP_SIZE
    return list(render_demo_clip.render_frames(width=width, height=height, fps=CLIP_FPS, duration=1.5))


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory, clip_frames: list[np.ndarray]) -> Path:
    path = tmp_path_factory.mktemp("clips") / "with_audio.mp4"
    assert render_demo_clip.write_clip(path, clip_frames, fps=CLIP_FPS, audio=True) == len(clip_frames)
    return path


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Newton and a smaller Gauss side by side, as one photo."""
    newton = load_image(sample_path("newton.png"))
    gauss = load_image(sample_path("gauss.png"))
    gauss = cv2.resize(gauss, (newton.shape[0] * gauss.shape[1] // gauss.shape[0] // 2, newton.shape[0] // 2))
    canvas = np.zeros((newton.shape[0], newton.shape[1] + gauss.shape[1], 3), np.uint8)
    canvas[:, : newton.shape[1]] = newton
    canvas[: gauss.shape[0], newton.shape[1] :] = gauss
    path = tmp_path_factory.mktemp("photos") / "two.png"
    cv2.imwrite(str(path), canvas)
    return path


# ---------------------------------------------------------------- photos


def test_swap_photo(tmp_path: Path) -> None:
    out = tmp_path / "swapped.png"
    assert swapcam("swap", "--face", sample_path("newton.png"), "--target", sample_path("gauss.png"),
                   "--output", out) == 0
    before = load_image(sample_path("gauss.png"))
    after = load_image(out)
    assert after.shape == before.shape
    changed = np.abs(after.astype(int) - before).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    # Only the face changed: truth box of Gauss's face is (376, 203)–(654, 568).
    assert changed.sum() > 30_000
    assert xs.min() > 376 - 60 and xs.max() < 654 + 60 and ys.min() > 203 - 80 and ys.max() < 568 + 60


def test_swap_photo_to_jpeg_and_back_formats(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "swapped.jpg"
    assert swapcam("swap", "--face", sample_path("gauss.png"), "--target", sample_path("newton.png"),
                   "--output", out, "--keep-eyes", "--no-keep-mouth") == 0
    assert load_image(out).shape == load_image(sample_path("newton.png")).shape


def test_several_faces_warn_and_face_index_picks(tmp_path: Path, two_faces: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    target = sample_path("gauss.png")
    out0, out1 = tmp_path / "largest.png", tmp_path / "second.png"
    with caplog.at_level(logging.WARNING):
        assert swapcam("swap", "--face", two_faces, "--target", target, "--output", out0) == 0
    assert any("--face-index" in record.getMessage() and "2 faces" in record.getMessage()
               for record in caplog.records)
    assert swapcam("swap", "--face", two_faces, "--face-index", "1", "--target", target, "--output", out1) == 0
    assert np.abs(load_image(out0).astype(int) - load_image(out1)).mean() > 0.5  # another source face


def test_face_index_out_of_range(tmp_path: Path, two_faces: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = swapcam("swap", "--face", two_faces, "--face-index", "2", "--target", sample_path("gauss.png"),
                     "--output", tmp_path / "x.png")
    assert status == 2
    assert "E01" in capsys.readouterr().err


def test_source_without_a_face_is_e05(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((256, 256, 3), 128, np.uint8))
    status = swapcam("swap", "--face", blank, "--target", sample_path("gauss.png"), "--output", tmp_path / "x.png")
    err = capsys.readouterr().err
    assert status == 2
    assert "E05" in err and "wall.png" in err and "Traceback" not in err


def test_photo_target_needs_photo_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = swapcam("swap", "--face", sample_path("gauss.png"), "--target", sample_path("newton.png"),
                     "--output", tmp_path / "x.mp4")
    assert status == 2 and "E01" in capsys.readouterr().err


def test_missing_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = swapcam("swap", "--face", sample_path("gauss.png"), "--target", tmp_path / "nope.jpg",
                     "--output", tmp_path / "x.jpg")
    assert status == 2 and "E01" in capsys.readouterr().err


# ---------------------------------------------------------------- videos


def test_swap_video_keeps_every_frame_and_the_audio(tmp_path: Path, clip_with_audio: Path,
                                                   clip_frames: list[np.ndarray],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "swapped.mp4"
    assert swapcam("swap", "--face", sample_path("gauss.png"), "--target", clip_with_audio, "--output", out) == 0
    assert "frames 100%" in capsys.readouterr().err  # the progress bar reached the end
    original, swapped = decode(clip_with_audio), decode(out)
    assert len(swapped) == len(original) == len(clip_frames)
    assert swapped[0].shape == original[0].shape
    differences = [np.abs(a.astype(int) - b).mean() for a, b in zip(original, swapped, strict=True)]
    assert min(differences) > 0.3  # a face was swapped in every frame
    seconds = audio_seconds(out)
    assert seconds is not None and seconds == pytest.approx(audio_seconds(clip_with_audio), abs=0.05)
    assert not list(tmp_path.glob(".*"))  # the temporary video-only file is gone


def test_swap_video_without_audio(tmp_path: Path, clip_frames: list[np.ndarray]) -> None:
    silent = tmp_path / "silent.mkv"
    render_demo_clip.write_clip(silent, clip_frames[:12], fps=CLIP_FPS)
    out = tmp_path / "out.mkv"
    assert swapcam("swap", "--face", sample_path("gauss.png"), "--target", silent, "--output", out) == 0
    assert len(decode(out)) == 12
    assert audio_seconds(out) is None


def test_video_target_needs_video_output(tmp_path: Path, clip_with_audio: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    status = swapcam("swap", "--face", sample_path("gauss.png"), "--target", clip_with_audio,
                     "--output", tmp_path / "x.png")
    assert status == 2 and "E01" in capsys.readouterr().err


def test_unreadable_video_is_e12(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    status = swapcam("swap", "--face", sample_path("gauss.png"), "--target", broken, "--output", tmp_path / "o.mp4")
    assert status == 2 and "E12" in capsys.readouterr().err


# ---------------------------------------------------------------- live run


def test_run_with_face_end_to_end(tmp_path: Path, clip_with_audio: Path) -> None:
    stats = tmp_path / "stats.json"
    assert swapcam("run", "--face", sample_path("gauss.png"), "--input", clip_with_audio, "--output", "null",
                   "--duration", "2", "--loop", "--stats-json", stats) == 0
    summary = json.loads(stats.read_text())
    assert summary["frames"]["output"] >= 10
    assert summary["errors"]["processor"] == 0
    assert {"detect", "landmarks", "warp", "blend"} <= set(summary["stages_ms"])


def test_run_to_a_file_records_swapped_frames(tmp_path: Path, clip_with_audio: Path,
                                              clip_frames: list[np.ndarray]) -> None:
    out = tmp_path / "live.mp4"
    assert swapcam("run", "--face", sample_path("gauss.png"), "--input", clip_with_audio, "--offline",
                   "--output", f"file:{out}") == 0
    recorded = decode(out)
    assert len(recorded) == len(clip_frames)
    assert np.abs(recorded[5].astype(int) - clip_frames[5]).mean() > 0.3


# ---------------------------------------------------------------- swapper choice


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    processing.add_processing_options(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_processor_face_needs_a_photo() -> None:
    with pytest.raises(ValueError, match="E01"):
        processing.build_processor(_args(processor="face"))


def test_auto_picks_mesh_without_neural_models(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        swapper = processing.build_swapper(_args(models=tmp_path))  # --models: a folder without them
    assert swapper.name == "mesh"
    assert any("using mesh" in record.getMessage() for record in caplog.records)


def test_inswapper_without_its_models_is_e06(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A models folder with everything but the neural files.
    root = models.models_dir()
    for entry in root.iterdir():
        if entry.suffix != ".onnx" or entry.name in ("scrfd.onnx", "face_mesh.onnx"):
            os.symlink(entry, tmp_path / entry.name)
    with pytest.raises(ModelError) as raised:
        processing.build_swapper(_args(swapper="inswapper", models=tmp_path))
    assert raised.value.code == "E06" and str(tmp_path) in str(raised.value)
    # auto, told the neural models are there, really goes to the inswapper.
    monkeypatch.setattr(processing, "_neural_models_present", lambda _root: True)
    with pytest.raises(ModelError):
        processing.build_swapper(_args(swapper="auto", models=tmp_path))


@pytest.mark.parametrize(("option", "value"), [("max_faces", 0), ("face_index", -1), ("threads", 0),
                                               ("det_size", 100)])
def test_face_option_ranges(option: str, value: int) -> None:
    with pytest.raises(ValueError, match="E01"):
        processing.check_face_options(_args(**{option: value}))
