"""The error catalogue: every user-facing failure has a code, a cause and a remedy.

Library code raises :class:`SwapcamError` (or a subclass that also inherits the
matching built-in, so ``except ValueError`` keeps working); only the CLI turns
it into a printed line and an exit status.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_RUNTIME = 4


@dataclass(frozen=True)
class ErrorSpec:
    """One catalogue entry."""

    code: str
    exit_status: int
    cause: str
    remedy: str


_SPECS = (
    ErrorSpec("E01", EXIT_USAGE, "invalid option value",
              "check the value against `swapcam run --help`"),
    ErrorSpec("E02", EXIT_USAGE, "unknown source or sink",
              "use one of: null, window, virtualcam[:DEVICE], file:PATH, udp://HOST:PORT, srt://HOST:PORT"),
    ErrorSpec("E03", EXIT_USAGE, "face photo cannot be read",
              "pass a JPEG, PNG, WebP, BMP, TIFF, HEIC or AVIF photo that opens in an image viewer"),
    ErrorSpec("E04", EXIT_USAGE, "image format needs a plugin that is not installed",
              "pip install pillow-heif (HEIC/AVIF), or convert the photo to JPEG"),
    ErrorSpec("E05", EXIT_USAGE, "no face found in the source photo",
              "use a photo with one clear, frontal face"),
    ErrorSpec("E06", EXIT_MISSING, "model file missing",
              "run `swapcam models fetch` (add --neural for the neural swapper)"),
    ErrorSpec("E07", EXIT_MISSING, "model file checksum mismatch",
              "delete the file and run `swapcam models fetch` again"),
    ErrorSpec("E08", EXIT_MISSING, "TensorRT engine does not match this model, GPU or TensorRT version",
              "rebuild it with `python tools/build_engines.py`, or use --backend onnxruntime"),
    ErrorSpec("E09", EXIT_MISSING, "TensorRT or a CUDA GPU is not available",
              "install the GPU extra (`pip install .[gpu]`) on an NVIDIA GPU machine, or use --backend onnxruntime"),
    ErrorSpec("E10", EXIT_MISSING, "no virtual camera device",
              "Linux: sudo modprobe v4l2loopback exclusive_caps=1 card_label=swapcam; "
              "Windows/macOS: install OBS Studio and start its Virtual Camera once"),
    ErrorSpec("E11", EXIT_MISSING, "camera cannot be opened",
              "check `swapcam devices`, close other apps using the camera, or pick another --camera; "
              "macOS: allow your terminal in System Settings > Privacy & Security > Camera"),
    ErrorSpec("E12", EXIT_USAGE, "video input cannot be opened or decoded",
              "check the path; re-encode the file with ffmpeg -i in.mp4 -c:v libx264 out.mp4"),
    ErrorSpec("E13", EXIT_RUNTIME, "network input unreachable",
              "check the URL and that the sender is running; swapcam retries live sources by itself"),
    ErrorSpec("E14", EXIT_USAGE, "output path cannot be written",
              "choose a folder you can write to, or free disk space"),
    ErrorSpec("E15", EXIT_RUNTIME, "network output cannot be opened",
              "pick another port or stop the program that uses it"),
    ErrorSpec("E16", EXIT_MISSING, "model download failed",
              "check the network, or download the files by hand into the models folder (see README)"),
    ErrorSpec("E17", EXIT_RUNTIME, "a pipeline worker failed",
              "rerun with --log-level debug and report the traceback"),
    ErrorSpec("E18", EXIT_MISSING, "onnxruntime and onnxruntime-gpu are both installed",
              "pip uninstall -y onnxruntime onnxruntime-gpu, then install just one of them"),
    ErrorSpec("E19", EXIT_MISSING, "the CUDA provider of ONNX Runtime failed to load",
              "pip install onnxruntime-gpu[cuda,cudnn] (CUDA 12 and cuDNN 9 as wheels), or install them "
              "system-wide; `swapcam doctor` shows what is missing"),
    ErrorSpec("E20", EXIT_RUNTIME, "out of GPU memory or inference provider failure",
              "close other GPU programs, lower --size, or use --device cpu"),
    ErrorSpec("E21", EXIT_RUNTIME, "processing a frame failed; the original frame was passed through",
              "rerun with --log-level debug to see why; the stream keeps going"),
    ErrorSpec("E22", EXIT_RUNTIME, "input signal lost; retrying",
              "reconnect the camera or restart the sender; swapcam resumes by itself"),
    ErrorSpec("E23", EXIT_USAGE, "this option needs a component that is not installed",
              "install the extra named in the message, e.g. pip install .[cpu]"),
    ErrorSpec("E24", EXIT_USAGE, "no such face in the gallery",
              "list the faces with GET /api/faces (or the panel) and use one of their ids"),
    ErrorSpec("E25", EXIT_RUNTIME, "the control panel cannot listen on its address",
              "pick another --panel-port, or stop the program that uses it"),
    ErrorSpec("E26", EXIT_USAGE, "the --config file cannot be used",
              "check its TOML syntax and that every key is a `swapcam run` option (e.g. face-index = 0)"),
    ErrorSpec("E30", EXIT_RUNTIME, "Triton Inference Server unreachable or not serving",
              "start it (`swapcam serve`, or tritonserver on the GPU box) and check --triton-url; "
              "a lost server is retried with backoff"),
    ErrorSpec("E31", EXIT_MISSING, "the server's model differs from the manifest",
              "serve the fetched models: `swapcam triton export DIR` on the GPU box, or `swapcam serve`"),
)

CATALOGUE: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


class SwapcamError(Exception):
    """A user-facing failure with a catalogue code and a remedy."""

    def __init__(self, code: str, detail: str = "", *, remedy: str | None = None) -> None:
        spec = CATALOGUE[code]
        self.code = code
        self.detail = detail
        self.remedy = remedy or spec.remedy
        self.exit_status = spec.exit_status
        super().__init__(self.message())

    def message(self) -> str:
        """One line: code, cause (with detail) and remedy."""
        cause = CATALOGUE[self.code].cause
        what = f"{cause}: {self.detail}" if self.detail else cause
        return f"{self.code} {what} — {self.remedy}"


class UsageError(SwapcamError, ValueError):
    """Bad option or argument value."""


class InputError(SwapcamError, OSError):
    """An input (photo, video, camera, URL) cannot be used."""


class ModelError(SwapcamError, FileNotFoundError):
    """A model or engine file is missing or does not match."""


class OutputError(SwapcamError, OSError):
    """An output (file, network, virtual camera) cannot be opened or written."""


class BackendError(SwapcamError, RuntimeError):
    """An inference backend or accelerator is not usable."""


def warning_text(code: str, detail: str = "") -> str:
    """A one-line coded warning, for the log (same shape as an error)."""
    return SwapcamError(code, detail).message()
