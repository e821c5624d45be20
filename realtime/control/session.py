"""A steerable ``swapcam run``: the live face swap, the gallery, saved settings, the panel and hotkeys.

``run`` builds a :class:`LiveSession` when the run can be steered (``--panel``, or a terminal
for the hotkeys, with a face swap); everything here stays off the pipeline's threads except
the processor and the preview slot.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from realtime.control.gallery import FaceGallery
from realtime.control.hotkeys import Hotkeys, stdin_is_terminal
from realtime.control.live import EngineChoice, LiveController, LiveSwapProcessor, PreviewSlot
from realtime.control.recording import FrameFormat, Recorder
from realtime.control.settings import LiveOptions, LiveState, restore
from realtime.control.store import Folders, load_saved, save
from realtime.errors import SwapcamError, UsageError

log = logging.getLogger("swapcam")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# `run` options that steer a live run rather than configure the pipeline: `bench` does not take them.
RUN_ONLY_OPTIONS = frozenset({"--panel", "--panel-port", "--panel-host", "--panel-token", "--no-hotkeys", "--config"})
# Live setting ← the `run` option that sets it at start.
_FROM_ARGS = {"keep_mouth": "keep_mouth", "keep_eyes": "keep_eyes", "max_faces": "max_faces",
              "face_index": "face_index", "swapper": "swapper", "enhancer": "enhancer",
              "enhancer_blend": "enhancer_blend"}


def add_panel_options(parser: argparse.ArgumentParser) -> None:
    """--panel and its options, --no-hotkeys."""
    group = parser.add_argument_group("live control")
    group.add_argument("--panel", action="store_true",
                       help="serve the control panel and HTTP API (http://127.0.0.1:8750/?token=… is printed)")
    group.add_argument("--panel-port", type=int, default=8750, metavar="N", help="the panel's port (default 8750)")
    group.add_argument("--panel-host", default="127.0.0.1", metavar="HOST",
                       help="address to listen on (default 127.0.0.1; another exposes the panel on your network)")
    group.add_argument("--panel-token", metavar="TOKEN",
                       help="a fixed token (saved, so an OBS dock URL keeps working); `random` goes back to a "
                            "new token each run")
    group.add_argument("--no-hotkeys", action="store_true",
                       help="no terminal hotkeys (space: swap on/off, 1-9: face, r: record, q: quit)")


def steerable(args: argparse.Namespace) -> bool:
    """True when the run gets live control: --panel, or a face swap with hotkeys on a terminal."""
    if getattr(args, "panel", False):
        if args.processor not in ("auto", "face"):
            raise UsageError("E01", f"--panel with --processor {args.processor}",
                             remedy="the panel steers the face swap: use --processor auto or face")
        return True
    hotkeys = not getattr(args, "no_hotkeys", True) and stdin_is_terminal()
    return hotkeys and bool(getattr(args, "face", None)) and args.processor in ("auto", "face")


def initial_options(args: argparse.Namespace, saved: dict[str, Any], defaults: dict[str, Any]) -> LiveOptions:
    """Defaults ← saved live settings ← options given on the command line or in --config."""
    options = restore(saved, LiveOptions())
    for key, dest in _FROM_ARGS.items():
        value = getattr(args, dest)
        if key in saved and value == defaults.get(dest):
            continue  # not given: the saved value stands
        if key == "enhancer":
            value = value != "none"
        if key == "swapper" and value == "auto":
            from realtime.commands.processing import _neural_models_present

            value = "inswapper" if _neural_models_present(getattr(args, "models", None)) else "mesh"
        options = replace(options, **{key: value})
    return options


@dataclass
class LiveSession:
    """The live processor and the control surfaces of one run."""

    args: argparse.Namespace
    folders: Folders
    controller: LiveController
    processor: LiveSwapProcessor
    preview: PreviewSlot
    token: str | None = None  # the panel token the user chose (saved), None: random per run
    recorder: Recorder | None = None
    server: Any = None
    hotkeys: Hotkeys | None = None
    closers: list[Any] = field(default_factory=list)

    @classmethod
    def create(cls, args: argparse.Namespace, defaults: dict[str, Any], folders: Folders | None = None) -> LiveSession:
        """Open the models and the gallery, put the --face photos in it, restore the last settings."""
        from realtime.commands.processing import check_face_options, engine_backend
        from realtime.faces.analyzer import FaceAnalyzer

        check_face_options(args)
        server = None
        if args.panel:
            from realtime.control.server import PanelServer

            server = PanelServer(host=args.panel_host, port=args.panel_port)  # binds now: E25 before any camera opens
        folders = folders or Folders.default()
        saved = load_saved(folders.settings)
        live_saved: dict[str, Any] = saved["live"] if isinstance(saved.get("live"), dict) else {}
        options = initial_options(args, live_saved, defaults)
        engines = EngineChoice(backend=engine_backend(args), device=args.device, threads=args.threads,
                               root=args.models, precision=args.precision, cuda_graph=args.cuda_graph)
        analyzer = FaceAnalyzer.open(root=engines.root, backend=engines.backend, device=engines.device,
                                     threads=engines.threads, precision=engines.precision,
                                     cuda_graph=engines.cuda_graph, det_size=args.det_size,
                                     max_faces=options.max_faces, background_check=args.face_check == "background")
        controller = LiveController(analyzer=analyzer, gallery=FaceGallery(folders.gallery), options=options,
                                    engines=engines)
        try:
            given = [controller.add_file(path).id for path in args.face or []]
            face = given[0] if given else live_saved.get("face")
            if face is not None:
                try:
                    controller.change({"face": face})
                except SwapcamError as exc:
                    if given:
                        raise
                    log.warning("saved face not restored: %s", exc.message())
        except BaseException:
            analyzer.close()
            if server is not None:
                server.close()
            raise
        token = args.panel_token if args.panel_token not in (None, "random") else None
        if args.panel_token is None:
            token = saved.get("panel_token") if isinstance(saved.get("panel_token"), str) else None
        preview = PreviewSlot()
        processor = LiveSwapProcessor(controller=controller, analyzer=analyzer, preview=preview)
        session = cls(args=args, folders=folders, controller=controller, processor=processor, preview=preview,
                      token=token, server=server)
        controller.settings.subscribe(session.save)
        session.save(controller.settings.current)
        return session

    def save(self, state: LiveState) -> None:
        """Save the live settings (and a chosen token) for the next run."""
        data: dict[str, Any] = {"live": state.options.to_json()}
        if self.token:
            data["panel_token"] = self.token
        save(self.folders.settings, data)

    def attach(self, pipeline: Any) -> None:
        """Start the panel and hotkeys for a built (not yet started) pipeline."""
        source = pipeline.source
        self.recorder = Recorder(folder=self.folders.recordings,
                                 frame_format=FrameFormat(source.width, source.height, source.fps, source.live),
                                 add_sink=pipeline.add_sink, remove_sink=pipeline.remove_sink)
        if self.args.panel:
            self._start_panel(pipeline)
        if not self.args.no_hotkeys and stdin_is_terminal():
            self._start_hotkeys(pipeline)

    def _start_panel(self, pipeline: Any) -> None:
        from realtime.control.server import PanelContext

        preview = self.preview
        pipeline.add_sink(preview)
        ctx = PanelContext(controller=self.controller, preview=preview, stats=pipeline.stats,
                           recorder=self.recorder, source_name=pipeline.source.name,
                           outputs=lambda: [s.name for s in pipeline.sinks if s is not preview])
        for name in ("realtime", "swapcam"):
            logging.getLogger(name).addHandler(ctx.errors)
            self.closers.append(lambda name=name: logging.getLogger(name).removeHandler(ctx.errors))
        self.server.start(ctx, token=self.token)
        if self.args.panel_host not in LOOPBACK:
            log.warning("panel: listening on %s — anyone on that network who has the token can see the camera "
                        "and steer this run", self.args.panel_host)
        print(f"panel: {self.server.url}", file=sys.stdout, flush=True)

    def _start_hotkeys(self, pipeline: Any) -> None:
        controller, recorder = self.controller, self.recorder
        actions: dict[str, Any] = {" ": controller.toggle_swap, "q": pipeline.request_stop}
        if recorder is not None:
            actions["r"] = recorder.toggle
        for number in range(1, 10):
            actions[str(number)] = lambda number=number: controller.pick(number)
        self.hotkeys = Hotkeys(actions)
        self.hotkeys.start()

    def status_suffix(self) -> str:
        """The status line's live part: the current face and the swap state (and recording)."""
        options = self.controller.options
        face = options.face or "none"
        if options.face is not None:
            with contextlib.suppress(SwapcamError):
                face = self.controller.gallery.get(options.face).name
        text = f"face {face} | swap {'on' if options.swap else 'OFF'}"
        if self.recorder is not None and self.recorder.active:
            text += " | REC"
        return text

    def close(self) -> None:
        """Stop hotkeys, recording and panel (the pipeline closes the processor)."""
        if self.hotkeys is not None:
            self.hotkeys.stop()
        if self.recorder is not None:
            self.recorder.close()
        if self.server is not None:
            self.server.stop()
        for closer in self.closers:
            closer()
