"""``swapcam serve``: a real Triton Inference Server on this machine, serving the manifest's fetched models."""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
from pathlib import Path
from typing import Any

from realtime.errors import EXIT_RUNTIME, UsageError

log = logging.getLogger("swapcam")


def add_parser(sub: Any) -> None:
    """Register ``serve``."""
    parser = sub.add_parser("serve", help="serve the fetched models on a Triton Inference Server here "
                                          "(for `--backend triton` on this or another machine)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens the "
                             "server to the network, without authentication)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    parser.add_argument("--http-port", type=int, default=8000,
                        help="HTTP port (default 8000; GET /v2/health/ready says when it is ready)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    parser.add_argument("--instances", type=int, default=1, metavar="N", help="instances per model (default 1)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="ONNX Runtime threads per instance (default 1)")
    parser.add_argument("--models", type=Path, metavar="DIR", help="models folder (default $SWAPCAM_MODELS)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="serve only these models (repeatable; default: every fetched model)")
    parser.add_argument("--log-file", type=Path, metavar="PATH", help="write tritonserver's log here")
    parser.add_argument("--ready-timeout", type=float, default=120.0, metavar="S", help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle)


def check_ports(args: argparse.Namespace) -> None:
    """E01 for a port out of range or used twice."""
    ports = (args.grpc_port, args.http_port, args.metrics_port)
    if any(not 1 <= p <= 65535 for p in ports) or len(set(ports)) != 3:
        raise UsageError("E01", f"ports grpc {ports[0]}, http {ports[1]}, metrics {ports[2]}",
                         remedy="use three different ports from 1 to 65535")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def handle(args: argparse.Namespace) -> int:
    """Write a repository of the fetched models, start tritonserver, wait for Ctrl-C, stop it cleanly."""
    from realtime.triton.repository import RepositoryOptions, manifest_models, write_repository
    from realtime.triton.server import ServerConfig, TritonServer

    check_ports(args)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` and service managers stop it as cleanly as Ctrl-C
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this machine on ports %d/%d/%d can use the models "
                    "(no authentication)", args.host, args.grpc_port, args.http_port, args.metrics_port)
    sources = manifest_models(args.models, names=tuple(args.model))
    options = RepositoryOptions(flavour="python", kind="cpu", instances=args.instances, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="swapcam-triton-") as work:
        repository = Path(work) / "models"
        write_repository(repository, sources, options, upcast=True)
        config = ServerConfig(repository=repository, host=args.host, http_port=args.http_port,
                              grpc_port=args.grpc_port, metrics_port=args.metrics_port)
        server = TritonServer(config, workdir=Path(work), log_path=args.log_file)
        try:
            server.start(timeout_s=args.ready_timeout)
            host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
            print(f"serving {', '.join(s.name for s in sources)}: --triton-url grpc://{host}:{args.grpc_port} "
                  f"(or http://{host}:{args.http_port}); ready at {config.ready_url}; Ctrl-C stops", flush=True)
            status = server.wait()
        except KeyboardInterrupt:
            print("stopping the server", flush=True)
            return 0
        finally:
            server.stop()
    log.error("tritonserver exited by itself with status %d", status)
    return EXIT_RUNTIME
