"""How long `enliven bench self` takes on a 10-second 512² clip with the mesh engine, and its peak memory.

    python benchmarks/bench_speed.py [--seconds 10]

Makes a clip of the bundled portrait animated by looping the demo preset, then benchmarks it (and a clip
twice as long) in fresh processes; prints wall time, frames per second and peak resident memory. Flat
memory means the benchmark streams instead of holding the videos.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import peak_rss_mib  # a sibling module (benchmarks/ is on the path when a script here runs)


def make_clip(path: Path, frames: int) -> None:
    from enliven import api
    from enliven.io.video import VideoReader, VideoWriter

    once = path.parent.parent / "once.mp4"  # outside the benchmarked folder
    if not once.exists():
        api.demo(once, progress=False)
    loop = list(VideoReader(once))
    with VideoWriter(path, 25) as writer:
        for i in range(frames):
            writer.write(loop[i % len(loop)])


def child(folder: str) -> None:
    from enliven.evaluation.report import write_report
    from enliven.evaluation.runner import run_self

    started = time.perf_counter()
    run = run_self(folder, ["mesh"], progress=False)
    write_report(run, Path(folder) / "report")
    seconds = time.perf_counter() - started
    frames = sum(s["mesh"].counts["frames"] for s in run["results"].values())
    peak = peak_rss_mib()
    print(f"{frames} {seconds:.2f} {peak:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"machine: {os.cpu_count()} CPU cores; mesh engine; 512² clip at 25 fps; identity on every 5th frame")
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 2):
            folder = Path(tmp) / f"x{factor}"
            folder.mkdir()
            make_clip(folder / "clip.mp4", int(args.seconds * 25 * factor))
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True, check=True
            ).stdout.split()
            frames, seconds, peak = int(out[0]), float(out[1]), float(out[2])
            print(f"  {args.seconds * factor:5.0f} s clip ({frames} frames): {seconds:6.1f} s "
                  f"({frames / seconds:.1f} frames/s), peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
