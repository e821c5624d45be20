"""--compare/--sweep parsing, overrides of the run options, and the report's pure parts."""

from __future__ import annotations

import pytest

from realtime.bench.overrides import apply_overrides, option_dests, parse_axis, parse_sweep, plan_configs
from realtime.bench.plot import stacked_stage_means
from realtime.bench.report import comparison, format_table, sweep
from realtime.bench.runner import BenchSettings
from realtime.cli import build_parser
from realtime.commands.bench import add_config_options, processing_key
from realtime.commands.processing import add_processing_options
from realtime.config import PipelineConfig
from realtime.errors import UsageError


def bench_args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["bench", *argv])


def test_axis_parsing_normalises_keys() -> None:
    axis = parse_axis("--ring_size = 1, 2 ,8")
    assert (axis.key, axis.values) == ("ring-size", ("1", "2", "8"))
    with pytest.raises(UsageError, match="repeats"):
        parse_axis("ring-size=1,1")
    for bad in ("ring-size", "=1", "ring-size="):
        with pytest.raises(UsageError):
            parse_axis(bad)


def test_sweep_takes_sizes_only() -> None:
    assert parse_sweep("size=640x480,1280x720").values == ("640x480", "1280x720")
    with pytest.raises(UsageError):
        parse_sweep("size=640x481")
    with pytest.raises(UsageError):
        parse_sweep("ring-size=1,2")


def test_overrides_go_through_the_run_options_with_their_types() -> None:
    base = bench_args("--size", "320x240", "--processor", "sleep:5")
    args = apply_overrides(base, {"ring-size": "8", "queue": "unbounded", "fps": "15"}, add_config_options)
    assert (args.ring_size, args.queue, args.fps) == (8, "unbounded", 15.0)
    assert (args.size, args.processor) == ("320x240", "sleep:5")  # the rest is the base
    assert base.ring_size == PipelineConfig.ring_size  # the base is not changed


def test_swapper_none_means_no_processing() -> None:
    args = apply_overrides(bench_args(), {"swapper": "none"}, add_config_options)
    assert args.processor == "passthrough"
    assert apply_overrides(bench_args(), {"swapper": "mesh"}, add_config_options).swapper == "mesh"


def test_flags_take_true_and_false() -> None:
    assert apply_overrides(bench_args(), {"offline": "true"}, add_config_options).offline is True
    assert apply_overrides(bench_args("--offline"), {"offline": "false"}, add_config_options).offline is False
    assert apply_overrides(bench_args(), {"keep-mouth": "off"}, add_config_options).keep_mouth is False


@pytest.mark.parametrize("overrides", [
    {"ring-size": "many"}, {"queue": "lifo"}, {"no-such-option": "1"}, {"backend": "cuda-magic"},
])
def test_bad_override_values_raise_e01(overrides: dict[str, str]) -> None:
    with pytest.raises(UsageError) as caught:
        apply_overrides(bench_args(), overrides, add_config_options)
    assert caught.value.code == "E01"


def test_plans_are_every_combination_with_the_first_as_baseline() -> None:
    plans = plan_configs(bench_args(), [parse_axis("ring-size=1,2"), parse_axis("queue=ring,unbounded")],
                         add_config_options, default_label="default")
    assert [p.label for p in plans] == ["ring-size=1 queue=ring", "ring-size=1 queue=unbounded",
                                        "ring-size=2 queue=ring", "ring-size=2 queue=unbounded"]
    assert plans[3].args.ring_size == 2 and plans[3].args.queue == "unbounded"
    assert plan_configs(bench_args(), [], add_config_options, default_label="default")[0].label == "default"
    with pytest.raises(UsageError):
        plan_configs(bench_args(), [parse_axis("fps=10,20"), parse_axis("fps=30")], add_config_options,
                     default_label="x")


def test_configurations_differing_only_in_pipeline_options_share_a_processor() -> None:
    assert {"processor", "swapper", "backend"} <= set(option_dests(add_processing_options))
    plans = plan_configs(bench_args(), [parse_axis("ring-size=1,2")], add_config_options, default_label="x")
    assert processing_key(plans[0].args) == processing_key(plans[1].args)
    other = plan_configs(bench_args(), [parse_axis("backend=onnxruntime,tensorrt")], add_config_options,
                         default_label="x")
    assert processing_key(other[0].args) != processing_key(other[1].args)


def test_settings_are_checked() -> None:
    assert BenchSettings(duration_s=1, rounds=5).duration_s == 1
    for bad in ({"duration_s": 0}, {"warmup_s": -1}, {"rounds": 0}, {"duration_s": 0.5, "rounds": 5}):
        with pytest.raises(UsageError):
            BenchSettings(**bad)  # type: ignore[arg-type]


def _config(label: str, p50: float, p95: float, fps: float, size: str | None = None,
            status: str = "ok") -> dict:  # type: ignore[type-arg]
    measured = status == "ok"
    width, height = (int(v) for v in (size or "640x480").split("x"))
    return {
        "label": label, "status": status, "overrides": {"size": size} if size else {},
        "source": {"name": "s", "width": width, "height": height, "fps": 30.0} if measured else None,
        "latency_ms": {"frame": {"p50": p50, "p95": p95}} if measured else None,
        "fps": {"out": fps} if measured else None,
    }


def test_comparison_ratios_skip_a_skipped_baseline() -> None:
    result = comparison([_config("a", 0, 0, 0, status="skipped"), _config("b", 10, 20, 30),
                         _config("c", 25, 30, 15)])
    assert result["baseline"] == "b"
    a, b, c = result["rows"]
    assert a["p50_ratio"] is None and b["p50_ratio"] == 1.0
    assert (c["p50_ratio"], c["p95_ratio"], c["fps_ratio"]) == (2.5, 1.5, 0.5)


def test_sweep_ratios_per_megapixel() -> None:
    rows = sweep([_config("size=640x480", 10, 12, 30, "640x480"),
                  _config("size=1280x720", 20, 30, 30, "1280x720")])["rows"]
    assert rows[1]["pixels_ratio"] == pytest.approx(3.0)
    assert rows[1]["p50_ratio"] == pytest.approx(2.0)
    assert rows[0]["p50_ms_per_mp"] == pytest.approx(10 / 0.3072)


def test_stacked_stages_add_up_to_the_mean_latency() -> None:
    def summary(mean: float, count: int) -> dict[str, float]:
        return {"p50": mean, "p95": mean, "p99": mean, "max": mean, "mean": mean, "count": count}

    stages = {"queue_in": summary(2, 10), "infer": summary(20, 10), "detect": summary(10, 5),
              "queue_out": summary(1, 10), "output": summary(0.1, 10)}
    parts = dict(stacked_stage_means(stages))
    assert parts == {"queue_in": 2, "detect": 5, "infer (other)": 15, "queue_out": 1}
    assert stacked_stage_means({}) == []


def test_table_aligns_columns() -> None:
    text = format_table(["config", "p50"], [["a", "1.0"], ["longer", "10.0"]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1].startswith("a ") and lines[2].endswith("10.0")
