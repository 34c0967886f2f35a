"""Video data: the synthetic needle-frames task, frame folders with list files, PyAV video files."""
