"""The preview's HighGUI calls run on the main thread where the OS needs it (macOS), via the dispatcher."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from realtime.config import PipelineConfig
from realtime.frame import Frame
from realtime.mainthread import MainThreadDispatcher, needs_main_thread
from realtime.pipeline import Pipeline
from realtime.processors import Passthrough
from realtime.sinks import window
from realtime.sinks.base import StopRequested
from realtime.sinks.window import WindowSink
from realtime.sources.synthetic import SyntheticSource


class FakeHighGui:
    """Records which thread made each HighGUI call (Cocoa would abort on any but the main one)."""

    def __init__(self, *, quit_after: int | None = None) -> None:
        self.threads: list[tuple[str, str]] = []
        self.quit_after = quit_after
        self.shown = 0

    def _note(self, name: str) -> None:
        self.threads.append((name, threading.current_thread().name))

    def namedWindow(self, *_args: Any) -> None:
        self._note("namedWindow")

    def imshow(self, *_args: Any) -> None:
        self._note("imshow")
        self.shown += 1

    def waitKey(self, _delay: int) -> int:
        self._note("waitKey")
        return ord("q") if self.quit_after is not None and self.shown >= self.quit_after else -1

    def getWindowProperty(self, *_args: Any) -> float:
        self._note("getWindowProperty")
        return 1.0

    def destroyWindow(self, *_args: Any) -> None:
        self._note("destroyWindow")


def _fake_gui(monkeypatch: pytest.MonkeyPatch, gui: FakeHighGui, platform: str) -> None:
    monkeypatch.setattr(window.sys, "platform", platform)
    monkeypatch.setattr(window, "gui_framework", lambda: "COCOA")
    for name in ("namedWindow", "imshow", "waitKey", "getWindowProperty", "destroyWindow"):
        monkeypatch.setattr(window.cv2, name, getattr(gui, name))


def test_only_macos_needs_the_main_thread() -> None:
    assert needs_main_thread("darwin")
    assert not needs_main_thread("linux") and not needs_main_thread("win32")


def test_a_call_from_a_worker_runs_on_the_owning_thread() -> None:
    dispatcher = MainThreadDispatcher()
    results: list[Any] = []

    def worker() -> None:
        results.append(dispatcher.call(lambda: threading.current_thread().name))
        try:
            dispatcher.call(lambda: 1 / 0)
        except ZeroDivisionError as exc:
            results.append(exc)

    thread = threading.Thread(target=worker, name="test-worker")
    thread.start()
    while thread.is_alive():
        dispatcher.run_pending(0.05)
    thread.join(5)
    assert results[0] == threading.current_thread().name
    assert isinstance(results[1], ZeroDivisionError)


def test_a_call_nobody_runs_times_out_instead_of_hanging() -> None:
    dispatcher = MainThreadDispatcher()
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            dispatcher.call(lambda: None, timeout_s=0.1)
        except TimeoutError as exc:
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert caught and dispatcher.run_pending(0.0) == 0  # the cancelled call is dropped, not run late


def test_on_macos_every_preview_call_runs_on_the_main_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    gui = FakeHighGui()
    _fake_gui(monkeypatch, gui, "darwin")
    sink = WindowSink()
    source = SyntheticSource(width=64, height=48, fps=60)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[sink], config=PipelineConfig(max_frames=6))
    pipeline.run()
    names = {name for name, _thread in gui.threads}
    assert {"namedWindow", "imshow", "waitKey", "destroyWindow"} <= names
    assert {thread for _name, thread in gui.threads} == {threading.current_thread().name}
    assert gui.shown >= 6


def test_on_macos_the_quit_key_still_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    gui = FakeHighGui(quit_after=3)
    _fake_gui(monkeypatch, gui, "darwin")
    source = SyntheticSource(width=64, height=48, fps=60)
    pipeline = Pipeline(source=source, processor=Passthrough(), sinks=[WindowSink()],
                        config=PipelineConfig(duration_s=20))
    pipeline.run()
    assert pipeline.finished and gui.shown == 3


def test_elsewhere_the_preview_stays_on_the_output_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    gui = FakeHighGui()
    _fake_gui(monkeypatch, gui, "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    sink = WindowSink()
    assert sink.main_thread is None
    frame = Frame(image=np.zeros((48, 64, 3), np.uint8), seq=0, t_capture=0)
    thread = threading.Thread(target=sink.write, args=(frame,), name="swapcam-output")
    thread.start()
    thread.join(5)
    assert {t for _n, t in gui.threads} == {"swapcam-output"}


def test_stop_requested_crosses_back_to_the_output_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    gui = FakeHighGui(quit_after=1)
    _fake_gui(monkeypatch, gui, "darwin")
    sink = WindowSink()
    frame = Frame(image=np.zeros((48, 64, 3), np.uint8), seq=0, t_capture=0)
    raised: list[BaseException] = []

    def output() -> None:
        try:
            sink.write(frame)
        except StopRequested as exc:
            raised.append(exc)

    thread = threading.Thread(target=output)
    thread.start()
    while thread.is_alive():
        assert sink.main_thread is not None
        sink.main_thread.run_pending(0.05)
    assert raised
