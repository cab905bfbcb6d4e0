"""Does memory stay flat however long the video? Peak memory of a 1-minute and a 10-minute render side by side.

    python benchmarks/flat_memory.py [--minutes 1 10] [--size 256] [--first-pass 10 40]

1. The render: the bundled portrait, scaled to --size² and rendered through a --size² crop with the mesh engine
   (cheap, so that ten minutes take a few minutes on 2 cores; the pipeline is the same at any size), speaks
   synthetic speech (voiced syllables between pauses, as in ``long_video.py``) of each length. Each length runs
   in a fresh process (``enliven.animate`` with the audio as driver); the script prints frames, wall time and
   peak resident memory (``ru_maxrss``) side by side, and how much more the longer render took.
2. The driving video's first pass (``enliven.motion.tracking.analyse``), the one stage that keeps something of
   every frame: the demo clip (one face), looped to each --first-pass length in seconds, is analysed under
   ``tracemalloc``. Over the difference in frames, two differences: of the memory held once every frame is read
   (each face's description, kept until the decisions are made), and of the peak (the decisions themselves
   stack each shot's face shapes for a while). Both per face per frame, and what they make for ten minutes of
   one face at 25 fps.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_video import write_speech  # a sibling script, not a package
from memory import peak_rss_mib  # a sibling module (benchmarks/ is on the path when a script here runs)


def render_child(wav: str, out: str, size: int) -> None:
    """One render in this fresh process; prints frames, seconds and peak RSS in MiB."""
    import cv2

    from enliven import api
    from enliven.io.images import read_image, write_image

    source = Path(out).with_suffix(".png")
    write_image(source, cv2.resize(read_image(api.bundled_portrait()), (size, size), interpolation=cv2.INTER_AREA))
    started = time.perf_counter()
    result = api.animate(source, wav, out, crop_size=size, progress=False)
    peak = peak_rss_mib()
    print(f"{result.frames} {time.perf_counter() - started:.1f} {peak:.1f}")


def first_pass_memory(clip: Path) -> tuple[int, int, int]:
    """(frames, bytes traced when every frame is read, peak bytes traced) of the first pass over ``clip``."""
    from enliven.motion import tracking

    held, decide = [], tracking.follow

    def follow(*args, **kwargs):  # called once every frame is read: what is held then is what the frames left
        held.append(tracemalloc.get_traced_memory()[0])
        return decide(*args, **kwargs)

    tracking.follow = follow
    tracemalloc.start()
    try:
        track = tracking.analyse(clip, tracking.TrackOptions())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        tracking.follow = decide
    track.store.close()
    return track.frames, held[0], peak


def looped_demo(path: Path, frames: int, once: Path) -> None:
    from enliven import api
    from enliven.io.video import VideoReader, VideoWriter

    if not once.exists():
        api.demo(once, progress=False)
    loop = list(VideoReader(once))
    with VideoWriter(path, 25) as writer:
        for i in range(frames):
            writer.write(loop[i % len(loop)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs=2, default=[1.0, 10.0], metavar=("SHORT", "LONG"))
    parser.add_argument("--size", type=int, default=256, help="portrait and crop side in pixels (default 256)")
    parser.add_argument("--first-pass", type=float, nargs=2, default=[10.0, 40.0], metavar=("SHORT", "LONG"),
                        help="driving clip lengths in seconds for the first-pass measure (default 10 40)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        render_child(args.child[0], args.child[1], int(args.child[2]))
        return

    print(f"machine: {os.cpu_count()} CPU cores; mesh engine; the bundled portrait at {args.size}x{args.size}, "
          f"crop {args.size}²; audio driving at 25 fps; each render in a fresh process")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav, out = Path(tmp) / f"speech{minutes:g}.wav", Path(tmp) / f"out{minutes:g}.mp4"
            write_speech(wav, minutes * 60)
            res = subprocess.run([sys.executable, __file__, "--child", str(wav), str(out), str(args.size)],
                                 capture_output=True, text=True, check=True).stdout.split()
            rows.append((minutes, int(res[0]), float(res[1]), float(res[2])))
            wav.unlink()
        print(f"{'render':>10}{'frames':>9}{'wall s':>9}{'frames/s':>10}{'peak RSS MiB':>14}")
        for minutes, frames, wall, peak in rows:
            print(f"{minutes:>6g} min{frames:9d}{wall:9.0f}{frames / wall:10.1f}{peak:14.0f}")
        (m0, f0, _, p0), (m1, f1, _, p1) = rows
        print(f"{m1:g} min against {m0:g} min: {p1 - p0:+.0f} MiB ({(p1 / p0 - 1) * 100:+.1f} %) "
              f"for {f1 - f0} more frames")

        once = Path(tmp) / "once.mp4"
        measured = []
        for seconds in args.first_pass:
            clip = Path(tmp) / f"driver{seconds:g}.mp4"
            looped_demo(clip, round(seconds * 25), once)
            measured.append(first_pass_memory(clip))
        (n0, h0, p0), (n1, h1, p1) = measured
        print(f"first pass of a driving video (one face, tracemalloc), {n0} and {n1} frames:")
        for what, a, b in (("held once read", h0, h1), ("peak", p0, p1)):
            per_frame = (b - a) / (n1 - n0)
            print(f"  {what:<15} {a / 2**20:5.1f} and {b / 2**20:5.1f} MiB: {per_frame / 1000:.2f} KB per face per "
                  f"frame, {per_frame * 25 * 600 / 1e6:.0f} MB for ten minutes of one face at 25 fps")


if __name__ == "__main__":
    main()
