"""``swapcam bench`` end to end: real pipeline runs of 1–3 s, their tables, JSON and plot."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from bench_helpers import run_bench
from PIL import Image

from realtime.bench.overrides import Plan
from realtime.bench.runner import Bench, BenchSettings, Setup
from realtime.bench.schema import SCHEMA, schema_text
from realtime.cli import build_parser
from realtime.commands import bench as bench_command
from realtime.errors import OutputError, UsageError
from realtime.frame import Frame
from realtime.priority import frame_threads_can_be_raised

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["--size", "320x240", "--warmup", "0.2"]


def only(report: dict[str, Any]) -> dict[str, Any]:
    [config] = report["configs"]
    return config


def test_known_processor_time_shows_in_the_infer_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, report = run_bench(tmp_path, capsys, *SHORT, "--processor", "sleep:20", "--duration", "1.5")
    assert status == 0
    config = only(report)
    assert config["processor"] == "sleep20ms"
    assert abs(config["stages_ms"]["infer"]["p50"] - 20.0) < 2.0
    assert config["latency_ms"]["frame"]["p50"] >= 20.0
    assert config["latency_ms"]["stamp"]["count"] == config["frames"]["output"] > 30
    assert "infer" in out and "p50" in out and "agree" in out
    # Whether the frame threads could go ahead of other programs' threads is part of where it was measured.
    raised = report["machine"]["frame_threads_raised"]
    assert raised == frame_threads_can_be_raised()
    assert ("frame threads raised" if raised else "frame threads at ordinary priority") in out


def test_counted_drops_equal_stamp_gaps_on_a_slow_processor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """45 ms per frame at 30 fps: the capture ring must drop, the output re-sends; the stamps see both."""
    _, _, report = run_bench(tmp_path, capsys, *SHORT, "--processor", "sleep:45", "--duration", "1.5",
                             "--ring-size", "1")
    stamps = only(report)["stamps"]
    assert stamps["counted_drops"] > 0 and stamps["counted_resent"] > 0
    assert stamps["gaps"] == stamps["counted_drops"]
    assert stamps["repeats"] == stamps["counted_resent"]
    assert stamps["agree"] and stamps["disagreements"] == []
    assert stamps["reordered"] == stamps["undecodable"] == stamps["foreign"] == 0
    assert only(report)["drops"]["capture"] == stamps["counted_drops"]


class StaleProcessor:
    """A buggy processor that returns the previous frame's image: no counter notices, the stamps do."""

    name = "stale"

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def process(self, frame: Frame) -> np.ndarray:
        previous, self._previous = self._previous, frame.image
        return frame.image if previous is None else previous

    def close(self) -> None:
        pass


def test_stamps_catch_what_the_counters_miss() -> None:
    args = build_parser().parse_args(["bench", *SHORT])
    setup = Setup(source_config=bench_command.source_config, pipeline_config=bench_command.bench_pipeline_config,
                  build_processor=lambda _args: StaleProcessor(), processor_key=lambda _args: "stale")
    bench = Bench(plans=[Plan(label="stale", args=args)], settings=BenchSettings(duration_s=1.0, warmup_s=0),
                  setup=setup, progress=lambda _line: None)
    [run] = bench.run()
    stamps = run.result()["stamps"]
    # Every output carries the previous frame: one repeat at the start, the last frame never shown.
    assert stamps["repeats"] == stamps["counted_resent"] + 1
    assert stamps["gaps"] == stamps["counted_drops"] + 1
    assert not stamps["agree"]
    assert any("never output" in text for text in stamps["disagreements"])


def test_compare_ring_sizes_reports_every_configuration_and_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, report = run_bench(tmp_path, capsys, *SHORT, "--processor", "sleep:40",
                                    "--compare", "ring-size=1,2,8", "--duration", "0.8", "--rounds", "2")
    assert status == 0
    labels = ["ring-size=1", "ring-size=2", "ring-size=8"]
    assert [c["label"] for c in report["configs"]] == labels
    assert all(c["status"] == "ok" and c["rounds"] == 2 for c in report["configs"])
    rows = report["comparison"]["rows"]
    assert report["comparison"]["baseline"] == "ring-size=1"
    assert rows[0]["p50_ratio"] == pytest.approx(1.0) and rows[0]["fps_ratio"] == pytest.approx(1.0)
    assert all(r["p50_ratio"] is not None and r["p95_ratio"] is not None for r in rows)
    # A deeper ring holds frames longer in front of a slow processor.
    assert rows[2]["p50_ms"] > rows[0]["p50_ms"]
    assert "comparison (ratios against ring-size=1)" in out
    for label in labels:
        assert out.count(label) >= 4  # latency, stage, stamp and comparison tables
    assert "×1.00" in out


def test_compare_queue_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, report = run_bench(tmp_path, capsys, *SHORT, "--processor", "sleep:40",
                               "--compare", "queue=ring,unbounded", "--duration", "0.8", "--rounds", "2")
    ring, unbounded = report["configs"]
    assert ring["drops"]["total"] > 0 and unbounded["drops"]["total"] == 0
    assert unbounded["stamps"]["agree"] and ring["stamps"]["agree"]
    assert "queue=unbounded" in out


def test_a_configuration_that_cannot_start_is_skipped_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, report = run_bench(tmp_path, capsys, *SHORT, "--compare", "processor=passthrough,sleep:-5",
                                    "--duration", "0.4", "--rounds", "1", "--warmup", "0")
    assert status == 0
    good, bad = report["configs"]
    assert good["status"] == "ok" and bad["status"] == "skipped"
    assert bad["skip_code"] == "E01" and bad["skipped_at"] == "setup" and bad["latency_ms"] is None
    assert "processor=sleep:-5: skipped: E01" in out
    assert report["comparison"]["rows"][1]["p50_ratio"] is None


def sample_photo() -> str:
    """The fetched sample portrait (`swapcam models fetch --samples`), or skip."""
    from realtime.errors import SwapcamError
    from realtime.models import sample_path

    try:
        return str(sample_path("gauss.png"))
    except SwapcamError as exc:
        pytest.skip(f"sample photo not fetched: {exc.message()}")


def test_swapper_none_against_mesh_on_a_real_face(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = sample_photo()
    _, out, report = run_bench(tmp_path, capsys, "--image", photo, "--face", photo, "--size", "320x240",
                               "--compare", "swapper=none,mesh", "--duration", "1.0", "--rounds", "1",
                               "--warmup", "0.3")
    none, mesh = report["configs"]
    assert none["processor"] == "passthrough" and mesh["status"] == "ok"
    assert mesh["processor"] != "passthrough"
    assert {"landmarks", "warp"} <= set(mesh["stages_ms"])  # the swap's sub-stages are reported
    assert mesh["latency_ms"]["frame"]["p50"] > none["latency_ms"]["frame"]["p50"]
    assert report["comparison"]["rows"][1]["p50_ratio"] > 1
    assert "swapper=mesh" in out


def test_unavailable_backend_is_skipped_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from realtime.engines.probe import tensorrt_version

    if tensorrt_version()[0] is not None:
        pytest.skip("TensorRT is usable here; the skip path needs a machine without it")
    photo = sample_photo()
    status, out, report = run_bench(tmp_path, capsys, "--image", photo, "--face", photo, "--size", "320x240",
                                    "--compare", "backend=onnxruntime,tensorrt", "--duration", "0.5",
                                    "--rounds", "1", "--warmup", "0")
    assert status == 0
    ort, trt = report["configs"]
    assert ort["status"] == "ok"
    assert trt["status"] == "skipped" and trt["skip_code"] == "E09" and trt["skipped_at"] == "setup"
    assert "backend=tensorrt: skipped: E09" in out


def test_comparing_swappers_without_a_face_is_refused() -> None:
    args = build_parser().parse_args(["bench", "--compare", "swapper=none,mesh"])
    with pytest.raises(UsageError, match="without --face"):
        args.handler(args)


def test_sweep_reports_every_size_and_per_megapixel_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, report = run_bench(tmp_path, capsys, "--sweep", "size=160x120,320x240", "--duration", "0.6",
                                    "--rounds", "1", "--warmup", "0.1")
    assert status == 0
    rows = report["sweep"]["rows"]
    assert [r["size"] for r in rows] == ["160x120", "320x240"]
    assert rows[1]["pixels_ratio"] == pytest.approx(4.0)
    assert rows[1]["megapixels"] == pytest.approx(0.0768)
    assert all(r["p50_ms_per_mp"] is not None and r["fps_out"] > 20 for r in rows)
    assert "size sweep" in out and "160x120" in out and "320x240" in out


def test_loopback_without_a_virtual_camera_is_skipped_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("v4l2loopback is Linux only; elsewhere --loopback takes the OBS camera's index")
    from realtime.v4l2 import loopback_devices

    if loopback_devices():
        pytest.skip("this machine has a virtual camera; see test_loopback_measures_the_virtual_camera_hop")
    status, out, report = run_bench(tmp_path, capsys, *SHORT, "--loopback", "/dev/video63", "--duration", "0.4",
                                    "--warmup", "0")
    assert status == 0
    assert report["loopback"]["status"] == "skipped" and report["loopback"]["reason"].startswith("E10")
    assert only(report)["loopback"] is None and only(report)["status"] == "ok"
    assert "loopback /dev/video63: skipped: E10" in out


@pytest.mark.virtualcam
def test_loopback_measures_the_virtual_camera_hop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("v4l2loopback is Linux only")
    from realtime.v4l2 import loopback_devices

    if not loopback_devices():
        pytest.skip("no v4l2loopback device (sudo modprobe v4l2loopback exclusive_caps=1)")
    _, out, report = run_bench(tmp_path, capsys, *SHORT, "--loopback", "--duration", "2")
    hop = only(report)["loopback"]
    assert report["loopback"]["status"] == "ok" and hop["unique"] > 0
    assert 0 < hop["hop_ms"]["p50"] < hop["total_ms"]["p50"]
    assert "virtual-camera hop" in out


def test_plot_has_three_panels_of_real_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "bench.png"
    run_bench(tmp_path, capsys, *SHORT, "--processor", "sleep:5", "--compare", "ring-size=1,2",
              "--duration", "0.6", "--rounds", "2", "--plot", str(plot))
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == (1200, 850)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # drawn, not blank


def test_schema_file_in_docs_matches_the_code() -> None:
    assert (ROOT / "docs" / "bench_schema.json").read_text() == schema_text()
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_rejects_a_report_missing_a_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, report = run_bench(tmp_path, capsys, *SHORT, "--duration", "0.3", "--warmup", "0")
    del report["configs"][0]["latency_ms"]["stamp"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, SCHEMA)


def test_all_configurations_skipped_returns_the_error_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, report = run_bench(tmp_path, capsys, *SHORT, "--processor", "sleep:-1", "--duration", "0.3")
    assert status == 2 and only(report)["status"] == "skipped"
    assert "default: skipped: E01" in out


@pytest.mark.parametrize(("argv", "code"), [
    (["--frames", "10"], "E01"),
    (["--rounds", "0"], "E01"),
    (["--duration", "0.3", "--rounds", "5"], "E01"),
    (["--compare", "ring-size"], "E01"),
    (["--compare", "no-such-option=1,2"], "E01"),
    (["--sweep", "fps=10,20"], "E01"),
    (["--sweep", "size=640x480,big"], "E01"),
    (["--json", "/no/such/folder/bench.json"], "E14"),
])
def test_bad_options_fail_fast_with_a_code(argv: list[str], code: str) -> None:
    args = build_parser().parse_args(["bench", *argv])
    start = time.perf_counter()
    with pytest.raises((UsageError, OutputError)) as caught:
        args.handler(args)
    assert caught.value.code == code
    assert time.perf_counter() - start < 1.0  # before any measuring


def test_cli_prints_the_coded_error(capsys: pytest.CaptureFixture[str]) -> None:
    from realtime.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["bench", "--compare", "=1,2", "--duration", "1"])
    assert exited.value.code == 2
    assert "E01" in capsys.readouterr().err


def test_bench_accepts_every_run_option() -> None:
    """A configuration is made of exactly the options of `swapcam run`, so --compare can name any of them."""
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    from realtime.control.session import RUN_ONLY_OPTIONS

    run_options = {o for a in sub["run"]._actions for o in a.option_strings} - RUN_ONLY_OPTIONS
    bench_options = {o for a in sub["bench"]._actions for o in a.option_strings}
    assert run_options <= bench_options
    assert isinstance(sub["bench"], argparse.ArgumentParser)


def test_ctrl_c_reports_the_rounds_that_finished(tmp_path: Path) -> None:
    import subprocess

    from platform_helpers import interrupt, popen_kwargs

    path = tmp_path / "bench.json"
    process = subprocess.Popen(
        [sys.executable, "-c", "from realtime.cli import main; main()", "bench", *SHORT, "--warmup", "0",
         "--compare", "ring-size=1,2", "--duration", "20", "--rounds", "20", "--json", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs(),
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until a round has finished, however slow the start-up
        if "round 1/20" in line:
            break
    interrupt(process)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 130, err
    assert "INTERRUPTED" in out and "ring-size=1" in out
    report = json.loads(path.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["interrupted"] and report["configs"][0]["rounds"] >= 1
    assert all(c["stamps"]["agree"] for c in report["configs"] if c["stamps"])
