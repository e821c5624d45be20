"""``swapcam triton export DIR``: a Triton model repository of the fetched models, for a GPU box's tritonserver."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

CONTAINER = "nvcr.io/nvidia/tritonserver:24.10-py3"


def add_parser(sub: Any) -> None:
    """Register ``triton`` with its ``export`` action."""
    parser = sub.add_parser("triton", help="Triton Inference Server tools (export a model repository)")
    actions = parser.add_subparsers(dest="triton_action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write a model repository (config.pbtxt + model per model)")
    export.add_argument("directory", type=Path, metavar="DIR", help="the repository folder to write")
    export.add_argument("--instances", type=int, default=1, metavar="N", help="instances per model (default 1)")
    export.add_argument("--kind", default="gpu", choices=("gpu", "cpu", "auto"),
                        help="where the instances run (default gpu)")
    export.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True,
                        help="max_batch_size and dynamic batching where the model allows them (default on)")
    export.add_argument("--engines", type=Path, metavar="DIR",
                        help="TensorRT engines folder: a model with an engine built for its exact file is "
                             "exported as tensorrt_plan")
    export.add_argument("--models", type=Path, metavar="DIR", help="models folder (default $SWAPCAM_MODELS)")
    export.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="export only these models (repeatable; default: every fetched model)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the repository and print how to serve it and how to use it."""
    from realtime.triton.repository import RepositoryOptions, manifest_models, write_repository

    sources = manifest_models(args.models, names=tuple(args.model), engines_dir=args.engines)
    options = RepositoryOptions(flavour="onnxruntime", instances=args.instances, kind=args.kind,
                                batching=args.batching)
    folders = write_repository(args.directory, sources, options)
    for folder in folders:
        print(f"wrote {folder}")
    directory = args.directory.resolve()
    print(f"serve it on the GPU box:\n  docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 "
          f"-v {directory}:/models {CONTAINER} tritonserver --model-repository=/models\n"
          "use it from this machine:\n  swapcam run --camera 0 --face me.jpg --backend triton "
          "--triton-url grpc://GPU-BOX:8001")
    return 0
