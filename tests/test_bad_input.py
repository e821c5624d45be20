"""Bad input where the user meets it: the ``swapcam`` command in a subprocess.

Each case must end quickly (a timeout guards every call) with its exit status by class (2 usage or
configuration, 3 missing models or hardware, 4 runtime) and one line ``error: Exx ... — remedy`` on
stderr, with no traceback. Cases already covered elsewhere are not repeated here: an unknown sink, a
missing video, an unwritable file output, a bad --size format and --fps 0 (test_cli_run.py); a photo
without a face for ``swap`` and a non-video target (test_swap_cli.py); the photo loader's own cases
(test_images.py).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from platform_helpers import SWAPCAM, unwritable_path
from runtime_media import free_udp_port, read_video, write_stamped_video

from realtime.engines.probe import probe_availability
from realtime.engines.sidecar import EngineSidecar, write_sidecar
from realtime.models import file_sha256, model_path, sample_path

TIMEOUT_S = 30
ERROR_LINE = re.compile(r"^error: (E\d\d) .+ — .+$")


def swapcam(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SWAPCAM, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def assert_coded(result: subprocess.CompletedProcess[str], code: str, status: int) -> str:
    """The run failed with ``status`` and exactly one coded error line naming ``code``; returns that line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    match = ERROR_LINE.match(lines[0])
    assert match and match.group(1) == code, lines[0]
    assert result.returncode == status, result.stderr
    return lines[0]


# ---------------------------------------------------------------- face photos


def _jpeg(width: int = 400, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        buffer, format="JPEG")
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that only declares its size: 20000×20000 must be refused before anything is decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 150, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


PHOTOS: dict[str, tuple[str, bytes | None]] = {
    "missing": ("me.jpg", None),
    "zero-byte": ("me.jpg", b""),
    "truncated": ("me.jpg", _jpeg()[:3000]),
    "not an image": ("me.jpg", b"Dear diary, today I took no photo.\n" * 40),
    "random bytes": ("me.png", np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
    "1x1": ("dot.png", _tiny_png()),
    "20000x20000": ("huge.png", _png_header(20000, 20000)),
}
COMMON = ("missing", "zero-byte", "truncated", "not an image", "random bytes")


def face_args(command: str, photo: Path, tmp_path: Path) -> list[object]:
    if command == "run":
        return ["run", "--face", photo, "--synthetic", "--size", "320x240", "--duration", "1"]
    return ["swap", "--face", photo, "--target", sample_path("gauss.png"), "--output", tmp_path / "out.png"]


@pytest.mark.parametrize(("kind", "command"), [(kind, command) for kind in COMMON for command in ("run", "swap")]
                         + [("1x1", "swap"), ("20000x20000", "run")])
def test_unreadable_face_photo_is_e03(tmp_path: Path, models_root: Path, kind: str, command: str) -> None:
    name, content = PHOTOS[kind]
    photo = tmp_path / name
    if content is not None:
        photo.write_bytes(content)
    started = time.perf_counter()
    line = assert_coded(swapcam(*face_args(command, photo, tmp_path)), "E03", 2)
    assert str(photo) in line
    assert time.perf_counter() - started < 15
    assert not (tmp_path / "out.png").exists()


def test_heic_without_its_plugin_is_e04(tmp_path: Path, models_root: Path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo = tmp_path / "phone.heic"
    Image.open(sample_path("newton.png")).convert("RGB").save(photo)
    # A machine without pillow-heif: a module of that name that cannot be imported shadows the real one.
    shadow = tmp_path / "shadow" / "pillow_heif"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("No module named \'pillow_heif\'")\n')
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    line = assert_coded(swapcam(*face_args("run", photo, tmp_path), env=env), "E04", 2)
    assert "pillow-heif" in line


def test_photo_without_a_face_is_e05_in_a_live_run(tmp_path: Path, models_root: Path) -> None:
    wall = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(wall)
    line = assert_coded(swapcam(*face_args("run", wall, tmp_path)), "E05", 2)
    assert "wall.png" in line and "frontal face" in line


# ---------------------------------------------------------------- video files


@pytest.fixture(scope="module")
def stamped_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stamped_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=30)


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_unusable_video_is_e12(tmp_path: Path, stamped_mp4: Path, damage: str) -> None:
    bad = tmp_path / "bad.mp4"
    data = stamped_mp4.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated"  # the index (moov) is at the end
                    else np.random.default_rng(3).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    assert_coded(swapcam("run", "--input", bad, "--offline", "--output", f"file:{tmp_path / 'out.mkv'}"), "E12", 2)
    assert_coded(swapcam("swap", "--face", sample_path("newton.png"), "--target", bad,
                         "--output", tmp_path / "swapped.mp4"), "E12", 2)
    assert not (tmp_path / "swapped.mp4").exists()


@pytest.fixture(scope="module")
def broken_midway(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A 60-frame MKV whose second half is garbage, and how many frames decode before the damage."""
    folder = tmp_path_factory.mktemp("broken")
    full = write_stamped_video(folder / "full.mkv", frames=60, gop=10)
    data = full.read_bytes()
    cut = folder / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2] + bytes(np.random.default_rng(5).integers(0, 256, 20000, dtype=np.uint8)))
    stamps, _ = read_video(cut, until_damage=True)
    return cut, len([s for s in stamps if s is not None])


def test_input_breaking_midway_leaves_a_valid_file_output(tmp_path: Path, broken_midway: tuple[Path, int]) -> None:
    cut, decodable = broken_midway
    out = tmp_path / "out.mkv"
    result = swapcam("run", "--input", cut, "--offline", "--output", f"file:{out}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stamps, times = read_video(out)  # decodes to the end without an error
    assert len(stamps) >= 10 and stamps == list(range(len(stamps)))  # every frame before the damage, in order
    assert len(stamps) >= decodable - 2
    assert times == sorted(times)


def test_swap_of_a_video_breaking_midway_writes_the_frames_before(tmp_path: Path, models_root: Path,
                                                                  broken_midway: tuple[Path, int]) -> None:
    cut, decodable = broken_midway
    out = tmp_path / "swapped.mp4"
    result = swapcam("swap", "--face", sample_path("newton.png"), "--target", cut, "--output", out)
    assert result.returncode == 0, result.stderr
    stamps, _ = read_video(out)
    assert len(stamps) >= decodable - 2 and stamps[:10] == list(range(10))  # no face here: frames unchanged


# ---------------------------------------------------------------- network


def test_unreachable_url_is_e13_at_once() -> None:
    started = time.perf_counter()
    line = assert_coded(swapcam("run", "--input", "http://127.0.0.1:9/live.ts", "--duration", "2"), "E13", 4)
    assert "127.0.0.1:9" in line and time.perf_counter() - started < 10


def test_udp_port_held_by_another_program_is_e13_not_a_hang() -> None:
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", port))
        started = time.perf_counter()
        line = assert_coded(swapcam("run", "--input", f"udp://127.0.0.1:{port}", "--duration", "2"), "E13", 4)
    assert "in use" in line and "another port" in line
    assert time.perf_counter() - started < 10


# ---------------------------------------------------------------- outputs and options


def assert_bench_skipped(result: subprocess.CompletedProcess[str], code: str, status: int) -> None:
    """bench reports a configuration that cannot start as skipped with its coded reason (the others would
    still run) and, when none could, exits with that reason's status."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    assert re.search(rf"^default: skipped: {code} .+ — .+$", result.stdout, re.MULTILINE), result.stdout


def test_unknown_sink_in_bench_is_e02() -> None:
    assert_bench_skipped(swapcam("bench", "--output", "tape:/dev/st0", "--duration", "1"), "E02", 2)


def test_unwritable_swap_output_is_e14(tmp_path: Path, models_root: Path) -> None:
    target = unwritable_path(tmp_path, "out.png")
    line = assert_coded(swapcam("swap", "--face", sample_path("newton.png"), "--target", sample_path("gauss.png"),
                                "--output", target), "E14", 2)
    assert str(target) in line


@pytest.mark.parametrize("args", [
    ["run", "--fps", "abc"],
    ["run", "--fps", "1000"],
    ["run", "--size", "0x0"],
    ["run", "--size", "99999x99999"],
    ["run", "--duration", "-1"],
    ["bench", "--duration", "abc"],
    ["swap", "--face", "x.jpg", "--target", "y.jpg"],  # --output missing
])
def test_invalid_option_values_are_e01(args: list[str]) -> None:
    assert_coded(swapcam(*args), "E01", 2)


@pytest.mark.parametrize("args", [["--fps", "-5"], ["--size", "641x480"]])
def test_invalid_bench_configuration_is_skipped_with_e01(args: list[str]) -> None:
    assert_bench_skipped(swapcam("bench", *args, "--duration", "1"), "E01", 2)


# ---------------------------------------------------------------- models and engines


@pytest.fixture()
def models_copy(tmp_path: Path, models_root: Path) -> Path:
    """A private models folder with the fetched models and their checksum records."""
    copy = tmp_path / "models"
    copy.mkdir()
    for name in ("scrfd.onnx", "face_mesh.onnx", "checksums.json"):
        shutil.copy2(models_root / name, copy / name)
    return copy


@pytest.mark.parametrize("command", ["run", "swap"])
def test_model_with_the_wrong_checksum_is_e07(tmp_path: Path, models_copy: Path, command: str) -> None:
    model = models_copy / "scrfd.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: a damaged download or disk
    model.write_bytes(bytes(data))
    line = assert_coded(swapcam(*face_args(command, sample_path("newton.png"), tmp_path),
                                env={"SWAPCAM_MODELS": str(models_copy)}), "E07", 3)
    assert "scrfd" in line and "models fetch" in line


def test_missing_model_is_e06(tmp_path: Path, models_copy: Path) -> None:
    (models_copy / "face_mesh.onnx").unlink()
    line = assert_coded(swapcam(*face_args("run", sample_path("newton.png"), tmp_path),
                                env={"SWAPCAM_MODELS": str(models_copy)}), "E06", 3)
    assert "face_mesh" in line


def test_engine_built_for_another_gpu_is_refused(tmp_path: Path, models_root: Path) -> None:
    """--backend tensorrt with only an engine built elsewhere: E08 (engine mismatch) where TensorRT and a GPU
    are present, E09 (no TensorRT or GPU) where they are not — never a silent fallback."""
    engines = tmp_path / "engines"
    engines.mkdir()
    scrfd = model_path("scrfd")
    engine = engines / "scrfd-other-gpu-fp16.engine"
    engine.write_bytes(b"a serialized plan for another GPU")
    write_sidecar(engine, EngineSidecar(
        model_name="scrfd", model_sha256=file_sha256(scrfd), tensorrt_version="10.0.1",
        gpu_name="NVIDIA GeForce GTX 1080", compute_capability="6.1", precision="fp16",
        profiles={"input.1": {"min": [1, 3, 128, 128], "opt": [1, 3, 320, 320], "max": [1, 3, 640, 640]}},
        build_seconds=30.0, built_at="2025-01-01T00:00:00+00:00", builder_flags=("fp16",)))
    available = probe_availability(engines)
    trt_usable = available.tensorrt_version is not None and available.gpu is not None and available.torch_cuda
    line = assert_coded(swapcam(*face_args("run", sample_path("newton.png"), tmp_path), "--backend", "tensorrt",
                                env={"SWAPCAM_ENGINES": str(engines)}), "E08" if trt_usable else "E09", 3)
    assert "--backend onnxruntime" in line
