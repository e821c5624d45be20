"""Triton Inference Server: model repositories, a local server, and the client checks."""
