"""Steering a live run: live settings, face gallery, the web panel and its HTTP API, terminal hotkeys."""
