"""The client side of a Triton server: the URL, the connection, and the start-up checks of one model.

The checks compare what the server says about a model (its config and
metadata) with the ONNX file of the manifest on this machine: the sha256 the
config records (``parameters { key: "sha256" }``, written by ``swapcam triton
export``/``serve``), then the input and output names, dims and dtypes. What
differs is named in the error (E31); a model the server does not have is E06.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from realtime.errors import BackendError, ModelError, UsageError
from realtime.triton.repository import ModelIO, TensorIO

CONNECT_TIMEOUT_S = 3.0  # the unreachable-at-start error must come within 5 s
CALL_TIMEOUT_S = 10.0
# `swapcam serve` runs a float16 graph as its float32 copy (as ONNX Runtime does in-process).
_UPCAST = ("TYPE_FP16", "TYPE_FP32")
URL_HELP = "use --triton-url grpc://HOST:PORT or http://HOST:PORT (e.g. grpc://127.0.0.1:8001)"


@dataclass(frozen=True)
class TritonTarget:
    """A server address: protocol (grpc or http), host and port."""

    protocol: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The URL as the user writes it."""
        return f"{self.protocol}://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port as tritonclient takes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def is_local(self) -> bool:
        """True when the server runs on this machine (system shared memory can carry the tensors)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_url(url: str) -> TritonTarget:
    """``grpc://HOST:PORT`` or ``http://HOST:PORT`` (port defaults 8001/8000); E01 otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "http") or not parts.hostname or parts.path not in ("", "/"):
        raise UsageError("E01", f"--triton-url {url!r}", remedy=URL_HELP)
    try:
        port = parts.port or (8001 if parts.scheme == "grpc" else 8000)
    except ValueError as exc:
        raise UsageError("E01", f"--triton-url {url!r}: {exc}", remedy=URL_HELP) from exc
    return TritonTarget(protocol=parts.scheme, host=parts.hostname, port=port)


def connect(target: TritonTarget) -> Any:
    """A tritonclient client for ``target``, checked live within CONNECT_TIMEOUT_S (E30 naming the URL)."""
    try:
        if target.protocol == "grpc":
            import tritonclient.grpc as client_module
        else:
            import tritonclient.http as client_module
    except ImportError as exc:
        raise BackendError("E23", f"tritonclient is not installed ({exc}): pip install .[triton]") from exc
    if target.protocol == "grpc":
        client = client_module.InferenceServerClient(url=target.address)
        live = _answer(lambda: client.is_server_live(client_timeout=CONNECT_TIMEOUT_S), target)
    else:
        client = client_module.InferenceServerClient(url=target.address, connection_timeout=CONNECT_TIMEOUT_S,
                                                     network_timeout=CALL_TIMEOUT_S)
        live = _answer(client.is_server_live, target)
    if not live:
        raise BackendError("E30", f"{target.url} answers but is not live")
    return client


def _answer(call: Any, target: TritonTarget) -> Any:
    """``call()``, with any connection failure turned into E30 naming the URL."""
    try:
        return call()
    except (TimeoutError, OSError, Exception) as exc:  # tritonclient raises its own and gevent/grpc errors
        raise BackendError("E30", f"{target.url}: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def server_model(client: Any, target: TritonTarget, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, metadata) of model ``name`` as plain dicts; E06 when the server does not serve it ready."""
    grpc = target.protocol == "grpc"
    ready = _answer(lambda: client.is_model_ready(name, client_timeout=CALL_TIMEOUT_S) if grpc
                    else client.is_model_ready(name), target)
    if not ready:
        raise ModelError("E06", f"{name} is not served (ready) by {target.url}",
                         remedy="put it in the server's model repository (`swapcam triton export DIR`) "
                                "or start `swapcam serve` where the model is fetched")
    if grpc:
        config = _answer(lambda: client.get_model_config(name, as_json=True, client_timeout=CALL_TIMEOUT_S),
                         target)["config"]
        metadata = _answer(lambda: client.get_model_metadata(name, as_json=True, client_timeout=CALL_TIMEOUT_S),
                           target)
    else:
        config = _answer(lambda: client.get_model_config(name), target)
        metadata = _answer(lambda: client.get_model_metadata(name), target)
    return config, metadata


def served_io(config: dict[str, Any], metadata: dict[str, Any]) -> ModelIO:
    """The model's tensors as the server declares them, the batch dimension (if any) given back as 1."""
    batched = int(config.get("max_batch_size", 0) or 0) > 0

    def tensor(entry: dict[str, Any]) -> TensorIO:
        dims = tuple(int(d) for d in entry.get("shape", []))
        if batched:
            dims = (1, *dims[1:])
        return TensorIO(name=entry["name"], dims=dims, data_type=f"TYPE_{entry['datatype']}")

    return ModelIO(inputs=tuple(tensor(t) for t in metadata.get("inputs", [])),
                   outputs=tuple(tensor(t) for t in metadata.get("outputs", [])))


def differences(name: str, expected: ModelIO, served: ModelIO, *, expected_sha256: str | None,
                served_sha256: str | None) -> list[str]:
    """What differs between the manifest's model and the server's, one phrase per difference."""
    found = []
    if expected_sha256 and served_sha256 and served_sha256 != expected_sha256:
        found.append(f"sha256 {served_sha256[:12]}… on the server ≠ {expected_sha256[:12]}… in the manifest")
    for kind, mine, theirs in (("input", expected.inputs, served.inputs), ("output", expected.outputs,
                                                                          served.outputs)):
        by_name = {t.name: t for t in theirs}
        for tensor in mine:
            other = by_name.pop(tensor.name, None)
            if other is None:
                found.append(f"{kind} {tensor.name!r} missing on the server")
                continue
            if other.data_type != tensor.data_type and (tensor.data_type, other.data_type) != _UPCAST:
                found.append(f"{kind} {tensor.name!r} dtype {other.data_type} ≠ {tensor.data_type}")
            if not _dims_agree(tensor.dims, other.dims):
                found.append(f"{kind} {tensor.name!r} dims {list(other.dims)} ≠ {list(tensor.dims)}")
        found.extend(f"{kind} {extra!r} not in the manifest's model" for extra in by_name)
    return found


def _dims_agree(mine: tuple[int, ...], theirs: tuple[int, ...]) -> bool:
    """Same rank, and each dimension equal or dynamic (-1) on one side."""
    return len(mine) == len(theirs) and all(a == b or -1 in (a, b) for a, b in zip(mine, theirs, strict=True))


def check_model(client: Any, target: TritonTarget, name: str, expected: ModelIO,
                expected_sha256: str | None) -> ModelIO:
    """E06 when ``name`` is not served, E31 naming what differs; returns the served tensors."""
    config, metadata = server_model(client, target, name)
    served = served_io(config, metadata)
    sha = config.get("parameters", {}).get("sha256", {}).get("string_value")
    found = differences(name, expected, served, expected_sha256=expected_sha256, served_sha256=sha)
    if found:
        raise ModelError("E31", f"{name} at {target.url}: {'; '.join(found)}")
    return served
