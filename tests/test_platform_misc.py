"""Windows and macOS behaviour that this Linux machine can simulate: a locked output, the OS trust store."""

from __future__ import annotations

import errno
import ssl
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from runtime_media import write_stamped_video

from realtime import download, videoswap
from realtime.errors import ModelError, OutputError


def test_replacing_an_output_open_in_a_player_is_e14(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = write_stamped_video(tmp_path / "target.mp4", frames=3)  # no audio: the render is just moved
    rendered = write_stamped_video(tmp_path / ".out.video.mp4", frames=3)
    output = tmp_path / "out.mp4"

    def locked(_src: object, dst: object) -> None:  # what Windows does while a player holds the old file
        raise PermissionError(errno.EACCES, "Access is denied", str(dst))

    monkeypatch.setattr(videoswap.os, "replace", locked)
    with pytest.raises(OutputError) as caught:
        videoswap.mux_audio(rendered, clip, output)
    assert caught.value.code == "E14" and "close the program" in caught.value.remedy


class FakeTrustStore:
    """Stands in for the truststore package: records the contexts it made."""

    def __init__(self) -> None:
        self.made: list[ssl.SSLContext] = []

    def SSLContext(self, protocol: int) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        self.made.append(context)
        return context


def test_downloads_use_the_os_trust_store_when_truststore_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeTrustStore()
    monkeypatch.setitem(sys.modules, "truststore", types.SimpleNamespace(SSLContext=fake.SSLContext))
    seen: list[Any] = []

    def urlopen(request: object, *, timeout: float, context: Any = None) -> Any:
        seen.append(context)
        raise urllib.error.URLError("offline in this test")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(download, "RETRY_PAUSE_S", 0.0, raising=False)
    with pytest.raises(ModelError):
        download.download(download.Remote("https://example.invalid/m.onnx", "0" * 64), tmp_path / "m.onnx",
                          attempts=1)
    assert seen and seen[0] is fake.made[0]


def test_without_truststore_python_default_certificates_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "truststore", None)
    assert download.tls_context() is None
