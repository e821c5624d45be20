"""The soak and chaos parts of ``swapcam bench``, and what keeps memory flat over long runs.

The soak itself (``--duration 600``) is for a quiet machine; here the same report logic runs for a few
seconds with a scaled-down window (the hidden ``--soak-window``).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from bench_helpers import run_bench

from realtime.bench import soak
from realtime.bench.overrides import Plan
from realtime.bench.report import build_report, format_report
from realtime.bench.runner import Bench, BenchSettings, ConfigRun, Hooks, Setup
from realtime.bench.schema import SCHEMA
from realtime.bench.soak import RSS_LIMIT_MB, soak_summary, soak_text
from realtime.bench.stamps import StampedSource, StampProbe
from realtime.config import PipelineConfig, SourceConfig
from realtime.models import sample_path
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sources.base import Source
from realtime.sources.synthetic import SyntheticSource
from realtime.stats import Stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import render_demo_clip


@pytest.fixture(scope="module")
def rendered_clip(tmp_path_factory: pytest.TempPathFactory, models_root: Path) -> Path:
    """The demo's rendered clip (a moving face), small and short: the soak's input, looped."""
    path = tmp_path_factory.mktemp("soak") / "clip.mp4"
    frames = render_demo_clip.render_frames(width=320, height=180, fps=15, duration=2.0)
    render_demo_clip.write_clip(path, frames, fps=15)
    return path


def test_short_soak_with_chaos_on_the_face_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    rendered_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 1.5 s window's p99 on a shared 2-core machine is noise, so the p99 limit is lifted here and this run
    # checks the rest; the p99 verdict itself is checked on constructed latencies below.
    monkeypatch.setattr(soak, "P99_TOLERANCE", 1e9)
    status, out, report = run_bench(
        tmp_path, capsys, "--input", str(rendered_clip), "--loop", "--face", str(sample_path("newton.png")),
        "--swapper", "mesh", "--duration", "5", "--warmup", "0.5", "--soak", "--soak-window", "1.5",
        "--chaos", "source=0.03,processor=0.05,seed=2")
    [config] = report["configs"]
    assert report["settings"]["soak"] is True and report["settings"]["soak_window_s"] == 1.5
    assert config["processor"] == "faceswap:mesh"  # the processor measured; its injected faults: "chaos"
    result = config["soak"]
    assert result["workers"] == {"deaths": 0, "errors": []}
    rss = result["rss_mb"]
    assert rss["start"] > 0 and rss["growth"] < RSS_LIMIT_MB and rss["limit"] == RSS_LIMIT_MB
    p99 = result["p99_ms"]
    assert p99["window_s"] == 1.5 and p99["first"] > 0 and p99["last"] > 0 and p99["change"] is not None
    assert result["checks"] == {"rss": True, "workers": True, "p99": True} and result["passed"] is True
    assert status == 0
    chaos = {entry["fault"]: entry for entry in config["chaos"]}
    assert set(chaos) == {"source", "processor"}
    for kind, entry in chaos.items():
        assert entry["injected"] > 0 and entry["counted"] == entry["injected"] == config["errors"][kind]
        assert entry["went_on"] and entry["output_after_last"] > 0
    assert "soak (memory, workers, p99 of the first vs the last 1.5 s)" in out and "PASS" in out
    assert "source read failures:" in out and "processor exceptions:" in out and "the stream went on" in out
    assert config["stamps"]["agree"], config["stamps"]["disagreements"]  # a glitch re-sends, never a blank


def test_a_failed_soak_exits_1_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soak, "RSS_LIMIT_MB", -1e9)  # no growth passes: the memory check must fail
    status, out, report = run_bench(tmp_path, capsys, "--size", "160x120", "--duration", "1.5", "--warmup", "0",
                                    "--soak", "--soak-window", "0.5")
    result = report["configs"][0]["soak"]
    assert result["checks"]["rss"] is False and result["checks"]["workers"] is True and result["passed"] is False
    assert status == 1
    assert "FAIL" in out and "memory grew" in out


def test_soak_is_on_by_itself_for_long_runs() -> None:
    assert BenchSettings(duration_s=120).soak_active and BenchSettings(duration_s=600).soak_active
    assert not BenchSettings(duration_s=60).soak_active and BenchSettings(duration_s=5, soak=True).soak_active


def test_without_soak_or_chaos_the_report_has_neither(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, report = run_bench(tmp_path, capsys, "--size", "320x240", "--duration", "1", "--warmup", "0")
    assert status == 0 and report["configs"][0]["soak"] is None and report["configs"][0]["chaos"] is None
    assert "soak" not in out and "injected faults" not in out


def measured_run(*, latencies: np.ndarray, times: np.ndarray, rss: tuple[float, float],
                 errors: tuple[str, ...] = ()) -> ConfigRun:
    run = ConfigRun(plan=Plan(label="default", args=argparse.Namespace()))
    run.latency_ms.extend(latencies.tolist())
    run.latency_t_s.extend(times.tolist())
    run.rss_start_mb, run.rss_end_mb = rss
    run.worker_errors += errors
    return run


MINUTE_TIMES = np.arange(0, 600, 1 / 30)  # ten minutes at 30 fps
LAST_MINUTE = MINUTE_TIMES >= 540


def flat_then(last_ms: float, *, first_ms: float = 20.0) -> np.ndarray:
    """Every frame ``first_ms`` except the last minute's, which take ``last_ms``: p99s known exactly."""
    return np.where(LAST_MINUTE, last_ms, first_ms)


def test_soak_verdict_fails_on_growth_deaths_or_a_slower_tail() -> None:
    steady = 20 + 5 * np.random.default_rng(0).random(MINUTE_TIMES.size)
    good = soak_summary(measured_run(latencies=steady, times=MINUTE_TIMES, rss=(200.0, 212.0)), window_s=60)
    assert good["passed"] and good["p99_ms"]["window_s"] == 60 and abs(good["p99_ms"]["change"]) < 0.05
    assert good["rss_mb"] == {"start": 200.0, "end": 212.0, "growth": 12.0, "limit": RSS_LIMIT_MB}
    grew = soak_summary(measured_run(latencies=steady, times=MINUTE_TIMES, rss=(200.0, 240.0)), window_s=60)
    assert not grew["passed"] and grew["checks"] == {"rss": False, "workers": True, "p99": True}
    died = soak_summary(measured_run(latencies=steady, times=MINUTE_TIMES, rss=(200.0, 201.0),
                                     errors=("RuntimeError: boom",)), window_s=60)
    assert not died["passed"] and died["workers"] == {"deaths": 1, "errors": ["RuntimeError: boom"]}
    assert died["checks"] == {"rss": True, "workers": False, "p99": True}
    tail = soak_summary(measured_run(latencies=flat_then(24.0), times=MINUTE_TIMES, rss=(200.0, 201.0)),
                        window_s=60)
    assert tail["p99_ms"]["first"] == 20.0 and tail["p99_ms"]["last"] == 24.0
    assert tail["p99_ms"]["change"] == pytest.approx(0.2)
    assert not tail["passed"] and tail["checks"] == {"rss": True, "workers": True, "p99": False}
    short = soak_summary(measured_run(latencies=steady[:300], times=MINUTE_TIMES[:300], rss=(1.0, 1.0)),
                         window_s=60)
    assert short["p99_ms"]["window_s"] == pytest.approx(299 / 30 / 2)  # two halves of a 10 s run


def test_soak_verdict_is_one_sided_a_faster_last_minute_passes() -> None:
    """The quiet 600 s soak of issue 12 printed FAIL because p99 fell 16.9 %: a fall is no failure."""
    faster = soak_summary(measured_run(latencies=flat_then(18.6, first_ms=22.4), times=MINUTE_TIMES,
                                       rss=(200.0, 213.9)), window_s=60)
    assert faster["p99_ms"]["first"] == 22.4 and faster["p99_ms"]["last"] == 18.6
    assert faster["p99_ms"]["change"] == pytest.approx(-0.1696, abs=1e-4)
    assert faster["checks"] == {"rss": True, "workers": True, "p99": True} and faster["passed"]
    within = soak_summary(measured_run(latencies=flat_then(21.0), times=MINUTE_TIMES, rss=(200.0, 201.0)),
                          window_s=60)
    assert within["p99_ms"]["change"] == pytest.approx(0.05) and within["passed"]  # 5 % slower: within 10 %
    text = soak_text([{"label": "quiet", "soak": faster}, {"label": "creeping", "soak": soak_summary(
        measured_run(latencies=flat_then(23.0), times=MINUTE_TIMES, rss=(200.0, 201.0)), window_s=60)}])
    quiet, creeping = (next(line for line in text.splitlines() if line.startswith(label))
                       for label in ("quiet", "creeping"))
    assert "-17.0%" in quiet and quiet.rstrip().endswith("PASS")
    assert "+15.0%" in creeping and creeping.rstrip().endswith("FAIL")
    assert "creeping: p99 of the last window 23.0 ms vs the first 20.0 ms (at most +10% allowed)" in text
    assert "quiet:" not in text


class DiesAfter:
    """A source whose reading fails with a bug (not a lost signal) after some frames: the capture worker dies."""

    def __init__(self, inner: Source, frames: int) -> None:
        self.inner, self.frames = inner, frames
        self.name, self.width, self.height, self.fps, self.live = "dies", inner.width, inner.height, inner.fps, True

    def read(self) -> np.ndarray:
        self.frames -= 1
        if self.frames < 0:
            raise RuntimeError("driver bug")
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def test_a_dead_worker_fails_the_soak_and_the_bench_reports_it() -> None:
    args = argparse.Namespace()
    setup = Setup(
        source_config=lambda _a: SourceConfig(kind="synthetic", width=320, height=240, fps=30),
        pipeline_config=lambda _a: PipelineConfig(sink_specs=()),
        build_processor=lambda _a: Passthrough(), processor_key=lambda _a: "passthrough",
        hooks=lambda _a: Hooks(wrap_source=lambda source: DiesAfter(source, 20)))
    settings = BenchSettings(duration_s=2, warmup_s=0, soak=True, soak_window_s=0.5)
    bench = Bench(plans=[Plan(label="default", args=args)], settings=settings, setup=setup,
                  progress=lambda _m: None)
    runs = bench.run()
    report = build_report(runs, settings=settings, options={})
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    [config] = report["configs"]
    assert config["status"] == "skipped" and config["skip_code"] == "E17" and "driver bug" in config["skip_reason"]
    assert config["soak"]["workers"]["deaths"] == 1 and not config["soak"]["passed"]
    assert "worker failed: RuntimeError: driver bug" in format_report(report)


# ---------------------------------------------------------------- memory stays flat


def test_stats_keep_a_bounded_uniform_sample_of_a_long_run() -> None:
    stats = Stats(max_samples=64)
    from realtime.frame import Frame

    image = np.zeros((16, 16, 3), np.uint8)
    for seq in range(1000):
        frame = Frame(image=image, seq=seq, t_capture=time.perf_counter_ns())
        frame.stages["infer"] = (frame.t_capture, frame.t_capture + 1000)
        frame.t_output = time.perf_counter_ns()
        stats.on_output(frame, resent=False)
    assert stats.output == 1000  # counters count every frame
    assert len(stats.latencies_ms) == len(stats.output_times_ns) == len(stats.sequences) <= 64
    assert len(stats.stage_ms["infer"]) == len(stats.sequences)
    steps = set(np.diff(np.array(stats.sequences)).tolist())
    assert steps == {stats.sample_every} and stats.sample_every == 16  # evenly spread over the whole run
    assert stats.sequences[0] == 0 and stats.sequences[-1] >= 1000 - stats.sample_every


def test_bench_bookkeeping_per_frame_is_small() -> None:
    """What a measured run keeps per frame (stats, stamps, capture times, stage splits) in bytes: an hour at
    30 fps must not amount to tens of MB."""
    frames = 3000
    source = StampedSource(SyntheticSource(width=160, height=96, fps=30, paced=False))
    probe = StampProbe()
    stats = Stats(max_samples=None)
    config = PipelineConfig(max_frames=frames, ring_size=4, sink_specs=())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[probe], config=config, stats=stats)
        pipeline.run()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert stats.output > frames * 0.5
    per_frame = kept / stats.output
    assert per_frame < 400, f"{per_frame:.0f} bytes kept per frame"  # ≈ 270 (≈ 800 with lists and dicts)
    assert len(probe.seen) >= stats.output and len(source.captured_ns) == stats.captured


class GlitchEvery:
    """A live source whose every ``n``-th read fails once (a dropped USB packet, a decoder hiccup)."""

    def __init__(self, inner: Source, n: int) -> None:
        self.inner, self.n, self.reads, self.glitches = inner, n, 0, 0
        self.name, self.width, self.height, self.fps, self.live = "glitchy", inner.width, inner.height, inner.fps, True

    def read(self) -> np.ndarray:
        from realtime.sources.base import SignalLost

        self.reads += 1
        if self.reads % self.n == 0:
            self.glitches += 1
            raise SignalLost("one failed read")
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def test_a_single_failed_read_repeats_the_last_frame_not_no_signal() -> None:
    """One failed read (what a --chaos source fault is): the call sees the last frame again for the 0.1 s
    backoff, not a NO SIGNAL flash — that needs a loss of NO_SIGNAL_AFTER_S."""
    from realtime.sinks.null import NullSink

    source = GlitchEvery(SyntheticSource(width=160, height=120, fps=60), 20)
    sink = NullSink(decode_stamps=True)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink],
                        config=PipelineConfig(duration_s=1.5, on_signal_loss="black"))
    pipeline.run()
    assert source.glitches >= 2 and pipeline.summary()["frames"]["resent"] > 0
    assert None not in sink.stamps  # every frame out carries a stamp: no blank NO SIGNAL frame
