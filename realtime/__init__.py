"""swapcam: live face swap with measured latency (import name ``realtime``)."""

__version__ = "0.1.0"
