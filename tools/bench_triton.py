"""Measure what a Triton server adds per model call, and how it groups two clients' requests.

    python tools/bench_triton.py calls --url grpc://127.0.0.1:8001 --seconds 20
        alternating rounds, per model: in-process ONNX Runtime vs the server over gRPC (shared memory and
        socket) and HTTP; median/p95 per call and the median added per call.
    python tools/bench_triton.py two-clients --url grpc://127.0.0.1:8001 --face FACE --image TARGET
        two `swapcam run` at 640x480 30 fps at once, then Triton's own statistics: requests
        (inference_count) against executions (execution_count) per model, and the batch sizes.

Start the server first (`swapcam serve`). The models are the fetched manifest models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from realtime.clock import now_s
from realtime.engines.selection import open_engine
from realtime.engines.triton import open_triton
from realtime.models import model_path

INPUTS = {"scrfd": {"input.1": (1, 3, 320, 320)}, "face_mesh": {"input_1": (1, 3, 192, 192)}}


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _server_ns(client: Any, name: str) -> tuple[int, int]:
    """(successful requests, their total time in ns inside the server) of model ``name`` so far."""
    stats = client.get_inference_statistics(name)["model_stats"][0]["inference_stats"]["success"]
    return int(stats["count"]), int(stats["ns"])


def calls(grpc_url: str, http_url: str, seconds: float, rounds: int) -> dict[str, Any]:
    """Per model and way, the median and p95 ms per call over alternating rounds, and the mean time the
    server itself spent per request (so the mean client − server difference is the transport's share)."""
    import tritonclient.http as http

    stats_client = http.InferenceServerClient(http_url.removeprefix("http://"))
    report: dict[str, Any] = {}
    for name, shapes in INPUTS.items():
        path = model_path(name)
        rng = np.random.default_rng(0)
        feeds = {k: rng.random(shape, dtype=np.float32) for k, shape in shapes.items()}
        ways = {
            "onnxruntime": open_engine(path, backend="onnxruntime", device="cpu", threads=1, model_name=name),
            "grpc+shm": open_triton(name, path=path, url=grpc_url, shared_memory=True),
            "grpc": open_triton(name, path=path, url=grpc_url, shared_memory=False),
            "http": open_triton(name, path=path, url=http_url, shared_memory=False),
        }
        times: dict[str, list[float]] = {way: [] for way in ways}
        server: dict[str, list[int]] = {way: [0, 0] for way in ways}
        per_round = seconds / rounds / len(ways)
        for engine in ways.values():
            engine.run(feeds)
        for round_no in range(rounds):
            order = list(ways) if round_no % 2 == 0 else list(reversed(ways))
            for way in order:
                count0, ns0 = _server_ns(stats_client, name)
                end = now_s() + per_round
                while now_s() < end:
                    start = now_s()
                    ways[way].run(feeds)
                    times[way].append((now_s() - start) * 1000)
                count1, ns1 = _server_ns(stats_client, name)
                server[way][0] += count1 - count0
                server[way][1] += ns1 - ns0
        local = statistics.median(times["onnxruntime"])
        report[name] = {way: {"calls": len(v), "p50_ms": round(statistics.median(v), 2),
                              "p95_ms": round(_percentile(v, 95), 2),
                              "added_p50_ms": round(statistics.median(v) - local, 2),
                              **_transport(v, *server[way])}
                        for way, v in times.items()}
    return report


def _transport(client_ms: list[float], count: int, ns: int) -> dict[str, float]:
    """Mean client time, mean server time per request, and their difference (0 entries for in-process)."""
    if not count:
        return {}
    client = statistics.fmean(client_ms)
    server = ns / count / 1e6
    return {"client_mean_ms": round(client, 2), "server_mean_ms": round(server, 2),
            "transport_mean_ms": round(client - server, 2)}


def two_clients(url: str, http_url: str, face: Path, image: Path, seconds: float) -> dict[str, Any]:
    """Run two clients at once; the server's statistics before and after."""
    import tritonclient.http as http

    client = http.InferenceServerClient(http_url.removeprefix("http://"))
    before = client.get_inference_statistics()
    command = [sys.executable, "-c", "from realtime.cli import main; main()", "run", "--image", str(image),
               "--face", str(face), "--swapper", "mesh", "--size", "640x480", "--fps", "30", "--duration",
               str(seconds), "--backend", "triton", "--triton-url", url]
    runs = [subprocess.Popen([*command, "--stats-json", f"/tmp/bench_triton_client{i}.json"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    for run in runs:
        run.wait(timeout=seconds + 120)
    after = client.get_inference_statistics()
    clients = [json.loads(Path(f"/tmp/bench_triton_client{i}.json").read_text()) for i in range(2)]
    return {"clients": [{"fps_out": round(c["fps"]["out"], 1), "latency_ms": c["latency_ms"],
                         "errors": c["errors"]} for c in clients],
            "server": _delta(before, after)}


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Requests, executions and batch sizes per model between two statistics snapshots."""
    old = {m["name"]: m for m in before.get("model_stats", [])}
    result = {}
    for model in after.get("model_stats", []):
        prior = old.get(model["name"], {})
        requests = int(model.get("inference_count", 0)) - int(prior.get("inference_count", 0))
        executions = int(model.get("execution_count", 0)) - int(prior.get("execution_count", 0))
        prior_batches = {b["batch_size"]: int(b["compute_infer"]["count"]) for b in prior.get("batch_stats", [])}
        batches = {b["batch_size"]: int(b["compute_infer"]["count"]) - prior_batches.get(b["batch_size"], 0)
                   for b in model.get("batch_stats", [])}
        queue_ns = int(model["inference_stats"]["queue"]["ns"]) - int(prior.get("inference_stats", {}).get(
            "queue", {}).get("ns", 0))
        result[model["name"]] = {"requests": requests, "executions": executions,
                                 "requests_per_execution": round(requests / executions, 2) if executions else None,
                                 "executions_by_batch_size": batches,
                                 "mean_queue_ms": round(queue_ns / requests / 1e6, 2) if requests else None}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("calls", "two-clients"))
    parser.add_argument("--url", default="grpc://127.0.0.1:8001", help="the server's gRPC URL")
    parser.add_argument("--http-url", default="http://127.0.0.1:8000", help="the server's HTTP URL")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--face", type=Path)
    parser.add_argument("--image", type=Path)
    args = parser.parse_args()
    if args.what == "calls":
        result = calls(args.url, args.http_url, args.seconds, args.rounds)
    else:
        if args.face is None or args.image is None:
            parser.error("two-clients needs --face and --image")
        result = two_clients(args.url, args.http_url, args.face, args.image, args.seconds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
