"""Frame sources: camera, file, url, image, synthetic."""
