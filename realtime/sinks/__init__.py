"""Frame sinks: virtualcam, udp/srt stream, file, window, null."""
