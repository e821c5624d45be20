"""A preview window (OpenCV HighGUI): q or Esc, or closing the window, stops the run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import cv2

from realtime.errors import OutputError
from realtime.frame import Frame
from realtime.mainthread import MainThreadDispatcher, needs_main_thread
from realtime.sinks.base import Sink, StopRequested

QUIT_KEYS = {ord("q"), ord("Q"), 27}  # 27: Esc


def gui_framework() -> str:
    """The GUI toolkit OpenCV was built with ('' for opencv-python-headless)."""
    current = getattr(cv2, "currentUIFramework", None)
    if current is not None:
        return str(current())
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            value = line.split(":", 1)[1].strip()
            return "" if value.upper() == "NONE" else value
    return ""


def check_display() -> None:
    """Raise OutputError E23 when a window cannot be shown here, with what to do instead."""
    if not gui_framework():
        raise OutputError("E23", "the installed OpenCV has no GUI (opencv-python-headless)",
                          remedy="pip uninstall -y opencv-python-headless && pip install opencv-python, "
                                 "or use another --output (file:PATH, udp://127.0.0.1:5000, virtualcam)")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise OutputError("E23", "no display: neither DISPLAY nor WAYLAND_DISPLAY is set",
                          remedy="run swapcam in a desktop session, or use another --output "
                                 "(file:PATH, udp://127.0.0.1:5000, virtualcam)")


class WindowSink(Sink):
    """Shows frames in a window titled ``title``.

    The window is created by the first ``write`` so that every HighGUI call
    happens on one thread: the output thread (GTK and Qt want one GUI thread),
    or on macOS the main thread through ``main_thread`` (Cocoa allows windows
    nowhere else; the pipeline's main loop runs the calls). ``close`` runs on
    the thread that finalises the outputs, once the output thread has left
    this sink, and only destroys the window (on macOS, through the main thread).
    """

    def __init__(self, title: str = "swapcam", *, main_thread: MainThreadDispatcher | None = None) -> None:
        check_display()
        self.title = title
        self.name = "window"
        self._shown = False
        if main_thread is None and needs_main_thread():
            main_thread = MainThreadDispatcher()
        self.main_thread = main_thread

    def write(self, frame: Frame) -> None:
        """Show ``frame``; raises StopRequested on q/Esc or when the user closed the window."""
        self._on_gui_thread(lambda: self._show(frame))

    def _show(self, frame: Frame) -> None:
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested("preview window closed")
        if not self._shown:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            self._shown = True
        cv2.imshow(self.title, frame.image)
        if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
            raise StopRequested("quit key pressed in the preview window")

    def close(self) -> None:
        """Close the window if it was opened."""
        self._on_gui_thread(self._destroy)

    def _destroy(self) -> None:
        if self._shown:
            self._shown = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # lets the toolkit process the close
            except cv2.error:
                pass

    def _on_gui_thread(self, call: Callable[[], None]) -> None:
        if self.main_thread is None:
            call()
        else:
            self.main_thread.call(call)
