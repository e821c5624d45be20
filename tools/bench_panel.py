"""What the control panel costs the live pipeline, and how fast a face switch lands.

One live face swap (a photo source at --size/--fps, the mesh swapper, a null output) runs
with the panel on 127.0.0.1. Side by side, in alternating windows of --seconds:

- panel closed vs one browser (headless chromium) watching the preview and the live figures:
  latency p50/p95 and drops per window; with ``--watcher reader`` the watcher is a thin client in
  its own process that only drains the preview and the live figures (what serving them costs
  swapcam, as with a browser on another machine); ``--cv-threads 1,2`` alternates OpenCV's pool
  sizes in the same run, and ``--helpers low,normal`` the priority of swapcam's helper threads (the
  panel's, the face check's; ``normal`` puts back what realtime.priority lowered, which needs root),
  ``--preview-rates 15,5,0`` the page's preview rate (0: off), and ``--frame-priority realtime,normal``
  whether the frame threads run in the real-time class (as swapcam run asks for, where the system
  allows it); the p95 of each stage that runs on every frame shows where the time goes (it is the
  inference stage that stretches, not the hand-offs between the threads), and the inference
  thread's own CPU time and its waits for a core per frame tell whether it worked longer or waited
  longer;
- face switches through the API (PATCH /api/settings {"face": ID}): the longest gap between
  new output frames around each switch, in frame intervals, and the time from the API call
  to the first output frame carrying the new face.

    python tools/bench_panel.py                      # 720p30, 3 rounds of 6 s per condition
    python tools/bench_panel.py --screenshots docs   # also the panel screenshots (wide and dock)
    python tools/bench_panel.py --watcher reader --cv-threads 1,2
    sudo python tools/bench_panel.py --helpers low,normal
    sudo python tools/bench_panel.py --frame-priority realtime,normal
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.clock import now_ns, now_s
from realtime.config import PipelineConfig, parse_size
from realtime.control.gallery import FaceGallery
from realtime.control.live import LiveController, LiveSwapProcessor, PreviewSlot
from realtime.control.server import PanelContext, PanelServer
from realtime.control.settings import LiveOptions
from realtime.faces.analyzer import FaceAnalyzer
from realtime.models import sample_path
from realtime.pipeline import Pipeline
from realtime.priority import lower_linux_thread, raise_linux_thread, restore_linux_thread
from realtime.sinks.null import NullSink
from realtime.sources.image import ImageSource

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def window(stats: Any, start_ns: int, end_ns: int, interval_ns: float) -> dict[str, Any]:
    """Latency percentiles, output frames and the longest gap between them (in frame intervals) in a window."""
    times, lat, _ = samples(stats)
    inside = (times >= start_ns) & (times < end_ns)
    chosen = lat[inside]
    if chosen.size < 2:
        return {"p50": float("nan"), "p95": float("nan"), "frames": int(chosen.size), "gap": float("nan"),
                "stages_p95": {}}
    row: dict[str, Any] = {"p50": float(np.percentile(chosen, 50)), "p95": float(np.percentile(chosen, 95)),
                           "frames": int(chosen.size), "gap": float(np.diff(times[inside]).max() / interval_ns)}
    row["stages_p95"] = {name: float(np.percentile(values[inside], 95))
                         for name, values in stage_samples(stats, times.size).items()}
    return row


def stage_samples(stats: Any, frames: int) -> dict[str, np.ndarray]:
    """Per-frame times of the stages that run on every frame (one sample per output frame, in step with
    the latencies; the detector, which runs now and then, is left out)."""
    with stats._lock:  # the output thread may have appended since samples(): the first ``frames`` match it
        return {name: np.array(values[:frames], dtype=np.float64) for name, values in stats.stage_ms.items()
                if len(values) == len(stats.latencies_ms) >= frames}


def samples(stats: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the output times, latencies and sequence numbers (under the stats lock: the arrays
    must not be exporting a buffer while the output thread appends)."""
    with stats._lock:
        return (np.array(stats.output_times_ns, dtype=np.int64), np.array(stats.latencies_ms, dtype=np.float64),
                np.array(stats.sequences, dtype=np.int64))


def cpu_seconds(browser: bool) -> float:
    """CPU time so far (user + system) of this process (pipeline + panel server), or of the watcher
    processes it started (chromium through Playwright's driver, which is not counted, or the reader)."""
    import psutil

    me = psutil.Process()
    if not browser:
        times = me.cpu_times()
        return float(times.user + times.system)
    total = 0.0
    for child in me.children(recursive=True):
        try:
            if "chrom" in child.name() or "python" in child.name():
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


class FrameClock:
    """Wraps the processor: for each frame, when it ended, the inference thread's own CPU time on it, and
    (Linux) how long the thread waited for a core meanwhile (run-queue time from schedstat). A frame that
    takes longer while a browser watches either worked longer (CPU) or waited for a core."""

    def __init__(self, processor: Any) -> None:
        self.frames: list[tuple[int, float, float]] = []  # (end ns, cpu ms, wait ms); appended by one thread
        self._process = processor.process
        processor.process = self.process

    def process(self, frame: Any) -> Any:
        cpu, waited = time.thread_time_ns(), _waited_ns()
        try:
            return self._process(frame)
        finally:
            self.frames.append((now_ns(), (time.thread_time_ns() - cpu) / 1e6, (_waited_ns() - waited) / 1e6))

    def between(self, start_ns: int, end_ns: int) -> np.ndarray:
        """(cpu ms, wait ms) of the frames that ended in the window."""
        chosen = [(cpu, wait) for end, cpu, wait in list(self.frames) if start_ns <= end < end_ns]
        return np.array(chosen, dtype=np.float64).reshape(-1, 2)


def _waited_ns() -> int:
    """Linux: how long the calling thread has waited for a core so far (0 where schedstat is missing)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
            return int(stat.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


HELPER_THREADS = ("swapcam-panel", "swapcam-face-check", "AnyIO")
FRAME_THREADS = ("swapcam-capture", "swapcam-inference", "swapcam-output")


def set_frame_priority(mode: str) -> None:
    """Put the frame threads in the real-time class (what swapcam asks for) or back in the ordinary one."""
    for thread in threading.enumerate():
        if thread.native_id is not None and thread.name in FRAME_THREADS:
            (raise_linux_thread if mode == "realtime" else restore_linux_thread)(thread.native_id)


def set_helpers(mode: str) -> None:
    """Lower swapcam's helper threads (what swapcam does itself), or put them back to normal (root only)."""
    for thread in threading.enumerate():
        if thread.native_id is None or not thread.name.startswith(HELPER_THREADS):
            continue
        if mode == "low":
            lower_linux_thread(thread.native_id)
        else:
            os.setpriority(os.PRIO_PROCESS, thread.native_id, 0)  # PermissionError unless root
            os.sched_setscheduler(thread.native_id, os.SCHED_OTHER, os.sched_param(0))


def print_pair(rows: dict[str, list[dict[str, Any]]], closed: str, watching: str) -> None:
    """Medians over the rounds of one closed/watching pair."""
    def median(condition: str, key: str) -> float:
        return statistics.median(row[key] for row in rows[condition])

    pool = closed.partition(" ")[2]
    print(f"{pool + ': ' if pool else ''}median p95: closed {median(closed, 'p95'):.1f} ms, watching "
          f"{median(watching, 'p95'):.1f} ms (difference {median(watching, 'p95') - median(closed, 'p95'):+.1f} ms); "
          f"median drops per window: closed {median(closed, 'drops'):g}, watching {median(watching, 'drops'):g}")
    print(f"{pool + ': ' if pool else ''}median CPU (cores busy): swapcam closed {median(closed, 'cpu_own'):.2f}, "
          f"watching {median(watching, 'cpu_own'):.2f}; watcher {median(watching, 'cpu_browser'):.2f}; the inference "
          f"thread waited for a core {median(closed, 'wait'):.2f} vs {median(watching, 'wait'):.2f} ms a frame")
    print_inference(pool, *(np.concatenate([row["inference"] for row in rows[c]]) for c in (closed, watching)))
    stages = sorted(set.intersection(*(set(row["stages_p95"]) for row in rows[closed] + rows[watching])))
    split = ", ".join(f"{name} {statistics.median(r['stages_p95'][name] for r in rows[closed]):.1f} -> "
                      f"{statistics.median(r['stages_p95'][name] for r in rows[watching]):.1f}" for name in stages)
    print(f"{pool + ': ' if pool else ''}median p95 per stage (ms, closed -> watching): {split}")


def print_inference(label: str, closed: np.ndarray, watching: np.ndarray) -> None:
    """The inference thread's own CPU time and its waits for a core per frame, closed vs watching."""
    if not len(closed) or not len(watching):
        return

    def pair(column: int, q: float) -> str:
        return f"{np.percentile(closed[:, column], q):.2f} vs {np.percentile(watching[:, column], q):.2f}"

    print(f"{label + ': ' if label else ''}the inference thread per frame, closed vs watching: its own CPU time "
          f"p50 {pair(0, 50)} ms, p95 {pair(0, 95)} ms; waiting for a core p50 {pair(1, 50)} ms, p95 {pair(1, 95)} ms, "
          f"max {closed[:, 1].max():.1f} vs {watching[:, 1].max():.1f} ms")


def total_drops(stats: Any) -> int:
    return int(sum(stats.drops().values()))


def patch(port: int, token: str, changes: dict[str, Any]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("PATCH", "/api/settings", body=json.dumps(changes).encode(),
                 headers={"Authorization": f"Bearer {token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def preview_fps(port: int, token: str, seconds: float = 3.0) -> float:
    """JPEG frames per second the preview stream delivers to one reader."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/preview.mjpg", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    frames, started = 0, now_s()
    while now_s() - started < seconds:
        frames += response.read1(1 << 20).count(b"--frame\r\n")
    conn.close()
    return frames / (now_s() - started)


READER = """
import http.client, sys, threading
port, token = int(sys.argv[1]), sys.argv[2]
def drain(path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": "Bearer " + token})
    response = conn.getresponse()
    while response.read1(1 << 20):
        pass
threads = [threading.Thread(target=drain, args=(path,)) for path in ("/api/preview.mjpg?which=output", "/api/events")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


class Reader:
    """A thin client in its own process that drains the preview stream and the live figures,
    standing in for a browser on another machine (it renders nothing)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.process: subprocess.Popen[bytes] | None = None

    def open(self, rate: str = "15") -> None:
        if self.process is None:
            self.process = subprocess.Popen([sys.executable, "-c", READER, str(self.port), self.token])
            time.sleep(0.5)

    def close_page(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        self.close_page()


class Watcher:
    """One headless chromium with the panel page open (or closed: about:blank)."""

    def __init__(self, url: str) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 860})
        self.url = url

    def open(self, rate: str = "15") -> None:
        """The page, with the preview at ``rate`` fps ("0": off) as the page's own control sets it."""
        self.page.goto(self.url)
        self.page.wait_for_selector("#preview-rate")
        if self.page.input_value("#preview-rate") != rate:
            self.page.select_option("#preview-rate", rate)
        if rate != "0":
            self.page.wait_for_function("document.getElementById('out').naturalWidth > 0", timeout=20_000)

    def close_page(self) -> None:
        self.page.goto("about:blank")

    def screenshots(self, folder: Path) -> None:
        self.open()
        time.sleep(3)  # the chart fills
        self.page.screenshot(path=str(folder / "panel-wide.png"))
        self.page.set_viewport_size({"width": 380, "height": 1100})
        time.sleep(1.5)
        self.page.screenshot(path=str(folder / "panel-dock.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 860})

    def stop(self) -> None:
        self.browser.close()
        self._playwright.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each window")
    parser.add_argument("--rounds", type=int, default=3, help="closed/watching pairs")
    parser.add_argument("--switches", type=int, default=8, help="face switches (alternating two faces)")
    parser.add_argument("--screenshots", type=Path, metavar="DIR", help="write panel-wide.png and panel-dock.png")
    parser.add_argument("--watcher", choices=("chromium", "reader"), default="chromium",
                        help="who watches: headless chromium on this machine, or a thin reader process")
    parser.add_argument("--cv-threads", default="", metavar="N[,N...]",
                        help="OpenCV pool sizes to alternate (default: as swapcam run sets it, --threads 1)")
    parser.add_argument("--helpers", default="low", metavar="low[,normal]",
                        help="priority of swapcam's helper threads to alternate (default low, as swapcam runs)")
    parser.add_argument("--frame-priority", default="realtime", metavar="realtime[,normal]",
                        help="the frame threads' class to alternate (default realtime, as swapcam run asks for)")
    parser.add_argument("--preview-rates", default="15", metavar="FPS[,FPS...]",
                        help="the page's preview rates to alternate: 15, 5 or 0 (off) (default 15)")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    pools = [int(n) for n in args.cv_threads.split(",") if n.strip()] or [1]
    modes = [m.strip() for m in args.helpers.split(",") if m.strip() in ("low", "normal")] or ["low"]
    rates = [r.strip() for r in args.preview_rates.split(",") if r.strip() in ("15", "5", "0")] or ["15"]
    priorities = [m.strip() for m in args.frame_priority.split(",") if m.strip() in ("realtime", "normal")] or [
        "realtime"]
    configs = [(pool, mode, rate, priority) for pool in pools for mode in modes for rate in rates
               for priority in priorities]

    analyzer = FaceAnalyzer.open(backend="onnxruntime", device="cpu", threads=1, background_check=True)
    gallery = FaceGallery(Path(tempfile.mkdtemp(prefix="swapcam-bench-panel-")))
    controller = LiveController(analyzer=analyzer, gallery=gallery, options=LiveOptions())
    faces = [controller.add_file(sample_path(name)).id for name in ("gauss.png", "solvay_conference_1927.jpg")]
    controller.change({"face": faces[0]})
    preview = PreviewSlot()
    processor = LiveSwapProcessor(controller=controller, analyzer=analyzer, preview=preview)
    clock = FrameClock(processor)
    source = ImageSource(str(sample_path("newton.png")), width=width, height=height, fps=args.fps)
    pipeline = Pipeline(source=source, processor=processor, sinks=[NullSink(), preview], config=PipelineConfig())
    server = PanelServer(port=0)
    ctx = PanelContext(controller=controller, preview=preview, stats=pipeline.stats, recorder=None,
                       source_name=source.name, outputs=lambda: ["null"])
    pipeline.start()
    server.start(ctx)
    watcher: Watcher | Reader | None = None
    if args.watcher == "reader":
        watcher = Reader(server.port, server.token)
    elif Path(CHROMIUM).exists():
        watcher = Watcher(server.url)
    labels = [" ".join(([f"cv{pool}"] if len(pools) > 1 else []) + ([mode] if len(modes) > 1 else [])
                       + ([f"preview{rate}"] if len(rates) > 1 else [])
                       + ([f"frames-{priority}"] if len(priorities) > 1 else []))
              for pool, mode, rate, priority in configs]
    conditions = [f"{name} {label}".strip() for label in labels for name in ("closed", "watching")]
    rows: dict[str, list[dict[str, Any]]] = {condition: [] for condition in conditions}
    try:
        time.sleep(3.0)  # warm up: models, tracker, colour cache
        if isinstance(watcher, Watcher) and args.screenshots is not None:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            watcher.screenshots(args.screenshots)
            watcher.close_page()
        for _ in range(args.rounds):
            for index, condition in enumerate(conditions):
                pool, mode, rate, priority = configs[index // 2]
                cv2.setNumThreads(pool)
                if len(modes) > 1:
                    set_helpers(mode)
                if priorities != ["realtime"]:  # realtime alone: as the pipeline set itself up
                    set_frame_priority(priority)
                if watcher is not None:
                    watcher.open(rate) if condition.startswith("watching") else watcher.close_page()
                time.sleep(1.0)
                drops = total_drops(pipeline.stats)
                own, browser = cpu_seconds(False), cpu_seconds(True)
                start = now_ns()
                time.sleep(args.seconds)
                row = window(pipeline.stats, start, now_ns(), 1e9 / args.fps)
                row["drops"] = total_drops(pipeline.stats) - drops
                wall = (now_ns() - start) / 1e9
                row["cpu_own"] = (cpu_seconds(False) - own) / wall
                row["cpu_browser"] = (cpu_seconds(True) - browser) / wall
                row["inference"] = clock.between(start, now_ns())
                row["wait"] = float(row["inference"][:, 1].mean()) if len(row["inference"]) else float("nan")
                rows[condition].append(row)
        cv2.setNumThreads(pools[0])
        if watcher is not None:
            watcher.close_page()
        preview_rate = preview_fps(server.port, server.token)
        interval_ns = 1e9 / args.fps
        gaps, delays, calls = [], [], []
        for number in range(args.switches):
            time.sleep(1.5)
            face = faces[(number + 1) % 2]
            t_call = now_ns()
            assert patch(server.port, server.token, {"face": face}) == 200
            calls.append((now_ns() - t_call) / 1e6)
            version = controller.settings.current.version
            deadline = now_s() + 5
            while version not in processor.first_seq and now_s() < deadline:
                time.sleep(0.005)
            time.sleep(1.0)
            times, _, seqs = samples(pipeline.stats)
            first = processor.first_seq.get(version)
            hit = np.flatnonzero(seqs == first) if first is not None else np.array([])
            if hit.size:
                delays.append((times[hit[0]] - t_call) / 1e6)
            around = times[(times >= t_call - 500_000_000) & (times <= t_call + 1_000_000_000)]
            if around.size > 1:
                gaps.append(float(np.diff(around).max() / interval_ns))
    finally:
        if watcher is not None:
            watcher.stop()
        server.stop()
        pipeline.stop()

    who = {Watcher: "one headless chromium on the same machine", Reader: "a thin reader process (renders nothing)",
           type(None): "nobody (no chromium)"}[type(watcher)]
    print(f"live face swap {width}x{height}@{args.fps:g}, mesh swapper, CPU; watching = {who}")
    print(f"{'condition':<24} {'round':>5} {'frames':>7} {'p50 ms':>8} {'p95 ms':>8} {'drops':>6} {'max gap':>8} "
          f"{'cpu swapcam':>12} {'cpu browser':>12} {'wait ms':>8}")
    for condition, results in rows.items():
        for index, row in enumerate(results):
            print(f"{condition:<24} {index + 1:>5} {row['frames']:>7} {row['p50']:>8.1f} {row['p95']:>8.1f} "
                  f"{row['drops']:>6} {row['gap']:>8.2f} {row['cpu_own']:>12.2f} {row['cpu_browser']:>12.2f} "
                  f"{row['wait']:>8.2f}")
    for closed, watching in zip(conditions[::2], conditions[1::2], strict=True):
        print_pair(rows, closed, watching)
    print(f"preview stream: {preview_rate:.1f} fps delivered to one reader (pipeline at {args.fps:g})")
    if gaps:
        print(f"face switch ({len(gaps)}x): longest output gap around a switch: median {statistics.median(gaps):.2f}, "
              f"max {max(gaps):.2f} frame intervals")
    if delays:
        print(f"API call -> first output frame with the new face: median {statistics.median(delays):.0f} ms, "
              f"max {max(delays):.0f} ms (the call itself returned after median {statistics.median(calls):.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
