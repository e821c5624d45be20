"""Triton backend: the model runs on a Triton Inference Server; to the face code it is one more Engine.

Tensors travel as binary data (gRPC always; HTTP with the binary extension).
:meth:`TritonEngine.submit` sends a call without waiting for it (gRPC
``async_infer``), so several faces' calls can be in flight at once;
:meth:`~TritonEngine.run` is ``submit(...).result()``. When the server runs on
this machine the inputs go through system shared memory instead of the socket.

A server lost mid-run does not stop the stream: calls fail fast with E30 (the
frame passes through as it was), one warning is logged, and the engine tries
again after a backoff (0.1 s doubling up to 2 s) until the server answers.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from realtime.clock import now_s
from realtime.engines.base import TensorSpec
from realtime.errors import BackendError, warning_text
from realtime.triton.client import CALL_TIMEOUT_S, TritonTarget, check_model, connect
from realtime.triton.repository import ModelIO, TensorIO

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 2.0
_TRITON_TO_NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64,
                    "TYPE_INT64": np.int64, "TYPE_INT32": np.int32, "TYPE_INT8": np.int8, "TYPE_UINT8": np.uint8,
                    "TYPE_BOOL": np.bool_}


def _spec(tensor: TensorIO) -> TensorSpec:
    return TensorSpec(name=tensor.name, shape=tuple(d if d >= 0 else None for d in tensor.dims),
                      dtype=np.dtype(_TRITON_TO_NUMPY.get(tensor.data_type, np.float32)))


class _Outage:
    """Tracks a lost server: one warning per outage, and when the next attempt is due."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.since: float | None = None
        self.delay = BACKOFF_FIRST_S
        self.next_try = 0.0
        self.lock = threading.Lock()

    def gate(self) -> None:
        """E30 at once while waiting for the next attempt (the frame must not wait on a dead server)."""
        with self.lock:
            if self.since is not None and now_s() < self.next_try:
                raise BackendError("E30", f"{self.name}: {self.url} lost, next attempt in "
                                   f"{self.next_try - now_s():.1f} s")

    def failed(self, exc: BaseException) -> BackendError:
        """Record a failed call; the error to raise."""
        now = now_s()
        with self.lock:
            if self.since is None:
                self.since = now
                self.delay = BACKOFF_FIRST_S
                log.warning("%s", warning_text("E30", f"{self.name}: lost {self.url} ({_first_line(exc)}); "
                                                      "frames pass through while it reconnects"))
            else:
                self.delay = min(self.delay * 2, BACKOFF_MAX_S)
            self.next_try = now + self.delay
        return BackendError("E30", f"{self.name}: {self.url}: {_first_line(exc)}")

    def succeeded(self) -> bool:
        """Record a good call; True when it ended an outage."""
        with self.lock:
            if self.since is None:
                return False
            log.info("%s: %s is back after %.1f s; resumed", self.name, self.url, now_s() - self.since)
            self.since = None
            return True


def _connection_lost(exc: BaseException) -> bool:
    """True for a lost connection or a timeout (retry later), False for a call the server refused or failed."""
    status = getattr(exc, "status", None)
    code = str(status() if callable(status) else status or "")
    if not code or code in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"):
        return True
    # A server shutting down unloads its models first; a restarted one has lost our shared-memory regions.
    text = str(exc)
    return "no available versions" in text or "shared memory region" in text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class _SharedInputs:
    """System shared-memory regions for one call's inputs, registered with the server and reused."""

    def __init__(self, client: Callable[[], Any], prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.regions: dict[str, tuple[Any, str, int]] = {}  # input name -> (handle, region name, size)

    def place(self, name: str, value: np.ndarray) -> str:
        """Copy ``value`` into the region for input ``name`` (grown when too small); its region name."""
        import tritonclient.utils.shared_memory as shm

        size = value.nbytes
        current = self.regions.get(name)
        if current is None or current[2] < size:
            if current is not None:
                self.release_one(name)
            region = f"{self.prefix}_{len(self.regions)}_{os.urandom(4).hex()}"
            handle = shm.create_shared_memory_region(region, f"/{region}", size)
            self.client().register_system_shared_memory(region, f"/{region}", size)
            current = (handle, region, size)
            self.regions[name] = current
        shm.set_shared_memory_region(current[0], [np.ascontiguousarray(value)])
        return current[1]

    def release_one(self, name: str) -> None:
        import tritonclient.utils.shared_memory as shm

        handle, region, _ = self.regions.pop(name)
        try:
            self.client().unregister_system_shared_memory(region)
        except Exception as exc:  # a lost server has forgotten it already
            log.debug("unregister %s: %s", region, exc)
        shm.destroy_shared_memory_region(handle)

    def release(self) -> None:
        """Unregister and free every region."""
        for name in list(self.regions):
            self.release_one(name)


class TritonEngine:
    """Model ``name`` on the server at ``target``, checked against ``expected`` (the manifest's ONNX) at start.

    Raises E30 (unreachable, naming the URL), E06 (the server does not serve the model) or E31 (the server's
    model differs: sha256, names, dims or dtypes). ``shared_memory``: None = when the server is local.
    """

    backend = "triton"

    def __init__(self, *, name: str, target: TritonTarget, expected: ModelIO, expected_sha256: str | None,
                 shared_memory: bool | None = None, slots: int = 4) -> None:
        self.name = name
        self.target = target
        self.provider = f"triton {target.url}"
        self._client = connect(target)
        self._io = check_model(self._client, target, name, expected, expected_sha256)
        self._outage = _Outage(name, target.url)
        self._grpc = target.protocol == "grpc"
        self.shared_memory = target.is_local() if shared_memory is None else shared_memory
        # One set of shared regions per call in flight; a call takes a free set or waits for one.
        self._slots: list[_SharedInputs] = []
        self._free: list[_SharedInputs] = []
        self._slot_count = slots
        self._slot_lock = threading.Condition()
        self._ids = itertools.count()
        # The HTTP client (gevent) works only on the thread that made it: one per thread.
        self._local = threading.local()
        self._local.client = self._client
        # Shared-memory segments outlive the process unless freed: free them when the engine goes or at exit.
        self._finalizer = weakref.finalize(self, _release_slots, self._slots)

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's input tensors as the server runs them (checked against the manifest's ONNX)."""
        return [_spec(t) for t in self._io.inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's output tensors as the server runs them."""
        return [_spec(t) for t in self._io.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on the server and wait for the outputs."""
        return self.submit(feeds).result(timeout=CALL_TIMEOUT_S + 1.0)

    def submit(self, feeds: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]:
        """Send one call and return at once; the future holds the outputs, or E30 when the server is lost."""
        self._outage.gate()
        future: Future[dict[str, np.ndarray]] = Future()
        slot = self._take_slot() if self.shared_memory else None
        try:
            inputs = self._inputs(feeds, slot)
            if self._grpc:
                self._client.async_infer(self.name, inputs, callback=lambda result, error: self._done(
                    future, slot, result, error), outputs=self._requested(), client_timeout=CALL_TIMEOUT_S)
            else:
                result = self._thread_client().infer(self.name, inputs, outputs=self._requested())
                self._done(future, slot, result, None)
        except Exception as exc:
            self._done(future, slot, None, exc)
        return future

    def close(self) -> None:
        """Free the shared-memory regions."""
        with self._slot_lock:
            _release_slots(self._slots)
            self._free.clear()

    def _inputs(self, feeds: dict[str, np.ndarray], slot: _SharedInputs | None) -> list[Any]:
        module = _client_module(self._grpc)
        inputs = []
        for tensor in self._io.inputs:
            value: np.ndarray = np.asarray(feeds[tensor.name], dtype=_TRITON_TO_NUMPY.get(tensor.data_type, np.float32))
            item = module.InferInput(tensor.name, list(value.shape), tensor.data_type.removeprefix("TYPE_"))
            if slot is not None:
                item.set_shared_memory(slot.place(tensor.name, value), value.nbytes)
            elif self._grpc:
                item.set_data_from_numpy(value)
            else:
                item.set_data_from_numpy(value, binary_data=True)
            inputs.append(item)
        return inputs

    def _requested(self) -> list[Any]:
        module = _client_module(self._grpc)
        if self._grpc:
            return [module.InferRequestedOutput(t.name) for t in self._io.outputs]
        return [module.InferRequestedOutput(t.name, binary_data=True) for t in self._io.outputs]

    def _done(self, future: Future[dict[str, np.ndarray]], slot: _SharedInputs | None, result: Any,
              error: BaseException | None) -> None:
        lost = error is not None and _connection_lost(error)
        if slot is not None:
            self._give_slot(slot, forget=lost)
        if error is not None:
            future.set_exception(self._outage.failed(error) if lost else
                                 BackendError("E30", f"{self.name}: the server failed the call: {_first_line(error)}"))
            return
        self._outage.succeeded()
        try:
            future.set_result({t.name: result.as_numpy(t.name) for t in self._io.outputs})
        except Exception as exc:  # on gRPC's thread: an escaping exception would leave the caller waiting
            future.set_exception(BackendError("E30", f"{self.name}: unreadable answer from {self.target.url}: "
                                              f"{_first_line(exc)}"))

    def _thread_client(self) -> Any:
        """The client to use on this thread (the one gRPC client; an HTTP client per thread)."""
        if self._grpc:
            return self._client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = connect(self.target)
        return client

    def _take_slot(self) -> _SharedInputs:
        with self._slot_lock:
            while not self._free and len(self._slots) >= self._slot_count:
                self._slot_lock.wait(timeout=CALL_TIMEOUT_S)
            if self._free:
                return self._free.pop()
            slot = _SharedInputs(self._thread_client, f"swapcam_{os.getpid()}_{self.name}_{next(self._ids)}")
            self._slots.append(slot)
            return slot

    def _give_slot(self, slot: _SharedInputs, *, forget: bool) -> None:
        """Return ``slot``; ``forget``: the server was lost, and a restarted one knows none of the regions."""
        with self._slot_lock:
            self._free.append(slot)
            if forget:
                for free in self._free:
                    free.release()
            self._slot_lock.notify()


def _release_slots(slots: list[_SharedInputs]) -> None:
    for slot in slots:
        slot.release()
    slots.clear()


def _client_module(grpc: bool) -> Any:
    if grpc:
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module


def open_triton(name: str, *, path: Any, url: str, shared_memory: bool | None = None) -> TritonEngine:
    """The TritonEngine for manifest model ``name`` whose checked local file is ``path``."""
    from realtime.engines.onnx_graph import read_onnx
    from realtime.models import cached_sha256
    from realtime.triton.client import parse_url
    from realtime.triton.repository import onnx_io

    target = parse_url(url)
    engine = TritonEngine(name=name, target=target, expected=onnx_io(read_onnx(path)),
                          expected_sha256=cached_sha256(path), shared_memory=shared_memory)
    log.info("%s: triton %s%s", name, target.url, " (inputs through shared memory)" if engine.shared_memory else "")
    return engine
