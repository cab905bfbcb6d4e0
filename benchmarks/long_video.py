"""Peak memory of a long render: the bundled portrait speaking N minutes of audio at 512², mesh engine.

    python benchmarks/long_video.py [--minutes 10]

Writes N minutes of synthetic speech (voiced syllables between pauses), animates the portrait to it in a
fresh process with `enliven animate --audio`, and prints frames, wall time and peak resident memory, next
to a 30-second run for comparison. Target: under 1.5 GiB for 10 minutes, and flat in length.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from memory import peak_rss_mib  # a sibling module (benchmarks/ is on the path when a script here runs)

RATE = 16000


def write_speech(path: Path, seconds: float) -> None:
    """Voiced syllables (150 Hz voice with two formants) and pauses, written in blocks."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        block = RATE  # one second at a time
        for start in range(0, int(seconds * RATE), block):
            t = (start + np.arange(block)) / RATE
            voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
            envelope = np.clip(np.sin(2 * np.pi * 0.75 * t), 0, None) ** 0.7
            signal = (0.06 * envelope * voice).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(signal[None], format="flt", layout="mono")
            frame.sample_rate = RATE
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


def child(wav: str, out: str) -> None:
    from enliven import api

    started = time.perf_counter()
    result = api.animate(api.bundled_portrait(), wav, out, progress=False)
    peak = peak_rss_mib()
    print(f"{result.frames} {time.perf_counter() - started:.1f} {peak:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"machine: {os.cpu_count()} CPU cores; mesh engine; 512x512 portrait; audio driving at 25 fps")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (30.0, args.minutes * 60):
            wav, out = Path(tmp) / f"speech{seconds:.0f}.wav", Path(tmp) / f"out{seconds:.0f}.mp4"
            write_speech(wav, seconds)
            res = subprocess.run([sys.executable, __file__, "--child", str(wav), str(out)],
                                 capture_output=True, text=True, check=True).stdout.split()
            frames, wall, peak = int(res[0]), float(res[1]), float(res[2])
            print(f"  {seconds / 60:5.1f} min: {frames} frames in {wall:.0f} s ({frames / wall:.1f} frames/s), "
                  f"peak RSS {peak:.0f} MiB ({peak / 1024:.2f} GiB), output {out.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
