"""Media in and out: images, streamed video decode/encode with PyAV, atomic output files."""
