"""Options that choose the frame processor, and building it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from realtime.commands.models import add_models_option
from realtime.errors import UsageError
from realtime.processors import Passthrough, Processor, Sleeper
from realtime.swappers.base import Swapper

log = logging.getLogger("swapcam")

SWAPPERS = ("auto", "mesh", "inswapper")
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch", "triton")
DEVICES = ("auto", "cuda", "cpu", "coreml")


def add_processing_options(parser: argparse.ArgumentParser) -> None:
    """--processor and the face-swap options."""
    parser.add_argument("--processor", default="auto", metavar="NAME",
                        help="auto (face swap when --face is given, else passthrough), face, passthrough, "
                             "or sleep:MS (a stand-in that takes MS per frame, for benchmarks)")
    add_face_options(parser)


def add_face_options(parser: argparse.ArgumentParser) -> None:
    """The options of the face swap itself (shared by ``run``, ``bench`` and ``swap``)."""
    group = parser.add_argument_group("face swap")
    group.add_argument("--face", action="append", type=Path, metavar="PHOTO",
                       help="photo of the face to put on the video (JPEG, PNG, WebP, BMP, TIFF, HEIC, AVIF); "
                            "repeat it with several photos of one person (the inswapper averages them)")
    group.add_argument("--face-index", type=int, metavar="N",
                       help="which face of the photo to use when it shows several (0 = largest, the default)")
    group.add_argument("--swapper", default="auto", choices=SWAPPERS,
                       help="mesh: landmark warp, fast on any CPU; inswapper: neural (needs "
                            "`swapcam models fetch --neural`); auto: inswapper when its models are there, "
                            "else mesh")
    group.add_argument("--max-faces", type=int, default=1, metavar="N",
                       help="swap up to N faces per frame, largest first (default 1)")
    group.add_argument("--keep-mouth", action=argparse.BooleanOptionalAction, default=True,
                       help="keep the real mouth inside the lips, so an open mouth shows (default on)")
    group.add_argument("--keep-eyes", action="store_true",
                       help="keep the real eyes (the mesh swapper's eye openings stay the video's)")
    group.add_argument("--enhancer", default="none", choices=("none", "gfpgan"),
                       help="gfpgan: restore the swapped face with GFPGAN v1.4 (needs `swapcam models fetch "
                            "--neural`; slow: its cost per frame is logged in live mode). Default none")
    group.add_argument("--enhancer-blend", type=float, default=0.8, metavar="W",
                       help="weight of the enhanced face, 0..1 (default 0.8)")
    group.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference backend (auto: a TensorRT engine if built, else ONNX Runtime on CUDA, "
                            "else torch on CUDA, else ONNX Runtime on the CPU; torch: the ONNX models converted "
                            "with onnx2torch; triton: the models run on the Triton server at --triton-url)")
    group.add_argument("--device", default="auto", choices=DEVICES,
                       help="where models run (default auto; coreml: try CoreML on a Mac)")
    group.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                       help="torch backend on CUDA: run the models in fp16 (default fp32)")
    group.add_argument("--cuda-graph", action="store_true",
                       help="capture fixed-shape models (face mesh, inswapper) into a CUDA graph and replay it "
                            "(torch on CUDA and TensorRT)")
    group.add_argument("--triton-url", metavar="URL",
                       help="Triton Inference Server for --backend triton: grpc://HOST:8001 or http://HOST:8000 "
                            "(`swapcam serve` starts one here)")
    group.add_argument("--threads", type=int, default=1, metavar="N",
                       help="CPU threads per model and for OpenCV's frame operations (default 1: the pipeline's "
                            "threads already share the cores)")
    group.add_argument("--face-check", default="background", choices=("background", "inline"),
                       help="where the once-a-second look for new faces runs in live video: background (its "
                            "own thread; no frame waits for it, the default) or inline (on the frame it falls on)")
    group.add_argument("--det-size", type=int, metavar="PX",
                       help="face detector input size, a multiple of 32 (smaller is faster, finds fewer small "
                            "faces)")
    add_models_option(group)


def build_processor(args: argparse.Namespace) -> Processor:
    """The processor the options ask for."""
    name = args.processor
    faces = getattr(args, "face", None)
    if name == "passthrough" or (name == "auto" and not faces):
        return Passthrough()
    if name in ("face", "auto"):
        if not faces:
            raise UsageError("E01", "--processor face without --face", remedy="add --face PHOTO")
        return build_face_swap(args)
    if name.startswith("sleep:"):
        try:
            ms = float(name.split(":", 1)[1])
        except ValueError as exc:
            raise UsageError("E01", f"--processor {name}", remedy="use e.g. --processor sleep:50") from exc
        if not 0 <= ms <= 10_000:
            raise UsageError("E01", f"--processor {name}", remedy="use a time from 0 to 10000 ms")
        return Sleeper(ms)
    raise UsageError("E01", f"--processor {name!r}", remedy="use auto, face, passthrough or sleep:MS")


def check_face_options(args: argparse.Namespace) -> None:
    """E01 for out-of-range face-swap option values (before any model is loaded)."""
    if args.max_faces < 1:
        raise UsageError("E01", f"--max-faces {args.max_faces}", remedy="use 1 or more faces")
    if args.face_index is not None and args.face_index < 0:
        raise UsageError("E01", f"--face-index {args.face_index}", remedy="use 0 (the largest face) or more")
    if not 1 <= args.threads <= 64:
        raise UsageError("E01", f"--threads {args.threads}", remedy="use 1 to 64 threads")
    if args.device == "cpu" and (args.precision != "fp32" or args.cuda_graph):
        raise UsageError("E01", f"--device cpu with {'--cuda-graph' if args.cuda_graph else '--precision fp16'}",
                         remedy="fp16 and CUDA graphs need a CUDA device: use --device cuda (or auto), or leave "
                                "them out")
    if args.det_size is not None and (args.det_size % 32 or not 64 <= args.det_size <= 1920):
        raise UsageError("E01", f"--det-size {args.det_size}",
                         remedy="use a multiple of 32 between 64 and 1920, e.g. 320")


def engine_backend(args: argparse.Namespace) -> str:
    """The backend value open_model takes: --backend, or the Triton server at --triton-url (with --backend triton
    or auto; with another backend the URL is unused, so `bench --compare backend=onnxruntime,triton` works)."""
    url = getattr(args, "triton_url", None)
    if args.backend == "triton" or (url and args.backend == "auto"):
        from realtime.engines.selection import triton_backend
        from realtime.triton.client import URL_HELP, parse_url

        if not url:
            raise UsageError("E01", "--backend triton without --triton-url", remedy=URL_HELP)
        return triton_backend(parse_url(url).url)
    return str(args.backend)


def build_face_swap(args: argparse.Namespace, *, fps: float | None = None) -> Any:
    """Open the analyzer and swapper, prepare the source face(s) and return the FaceSwapProcessor.

    ``fps``: set when rendering a file offline (see FaceSwapProcessor).
    """
    from realtime.faces.analyzer import FaceAnalyzer
    from realtime.faceswap import FaceSwapProcessor, load_source_faces, prepare_swapper

    check_face_options(args)
    live = fps is None and not getattr(args, "offline", False)
    backend = engine_backend(args)
    swapper = build_swapper(args)
    if args.enhancer != "none":
        from realtime.enhancers.gfpgan import with_enhancer

        swapper = with_enhancer(swapper, args.enhancer, backend=backend, device=args.device,
                                threads=args.threads, blend_weight=args.enhancer_blend,
                                live=live, root=args.models)
    # An offline render stays inline: the same video gives the same frames every time.
    analyzer = FaceAnalyzer.open(root=args.models, backend=backend, device=args.device,
                                 threads=args.threads, precision=args.precision, cuda_graph=args.cuda_graph,
                                 det_size=args.det_size, max_faces=args.max_faces,
                                 background_check=live and args.face_check == "background")
    sources = load_source_faces(args.face, analyzer, face_index=args.face_index)
    prepare_swapper(swapper, sources)
    log.info("face swap: %s swapper, source %s, up to %d face(s) per frame", swapper.name,
             ", ".join(str(s.path) for s in sources), args.max_faces)
    return FaceSwapProcessor(analyzer=analyzer, swapper=swapper, max_faces=args.max_faces, fps=fps)


def build_swapper(args: argparse.Namespace) -> Swapper:
    """The swapper ``--swapper`` names; ``auto`` takes inswapper when its models are present."""
    name = args.swapper
    if name == "auto":
        name = "inswapper" if _neural_models_present(args.models) else "mesh"
        log.info("--swapper auto: using %s (%s)", name,
                 "neural models found" if name == "inswapper"
                 else "neural models not fetched; `swapcam models fetch --neural` enables inswapper")
    if name == "mesh":
        from realtime.swappers.mesh import MeshSwapOptions, MeshSwapper

        return MeshSwapper(options=MeshSwapOptions(keep_mouth=args.keep_mouth, keep_eyes=args.keep_eyes))
    if name == "inswapper":
        return _open_inswapper(args)
    raise UsageError("E01", f"--swapper {name!r}", remedy="use auto, mesh or inswapper")


def _neural_models_present(root: Path | None) -> bool:
    try:
        from realtime.swappers.inswapper import neural_models_present
    except ImportError:
        return False
    return bool(neural_models_present(root))


def _open_inswapper(args: argparse.Namespace) -> Swapper:
    try:
        from realtime.swappers.inswapper import InswapperSwapper
    except ImportError as exc:
        raise UsageError("E23", f"--swapper inswapper is not available in this build ({exc})",
                         remedy="use --swapper mesh") from exc
    swapper: Swapper = InswapperSwapper.open(root=args.models, backend=engine_backend(args), device=args.device,
                                             threads=args.threads, keep_mouth=args.keep_mouth,
                                             precision=args.precision, cuda_graph=args.cuda_graph)
    return swapper
