"""Speed and memory of the default pipeline at 512²: per-stage milliseconds and end-to-end frames/s.

    python benchmarks/speed.py [--frames 125] [--repeat 4]

1. Makes a 512² driving clip of ``--frames`` frames with a real face (the bundled portrait animated by the demo
   preset, 125 frames, looped as often as needed).
2. Times each stage alone over that clip: decode, analyse (face mesh for up to four faces, as the tracking
   stage reads a driver), align, render, paste, encode.
3. Times `enliven.animate` end to end on it (decode and encode overlap with the main thread there), and with
   each kind of detail in alternating rounds (``DETAIL``): what drawn teeth, the driver's mouth inside and its
   wrinkles cost over the plain warp with a dark mouth.
4. Runs the end-to-end job in fresh processes on the clip and on a clip `--repeat` times as long, and
   prints the peak resident memory of each: flat means memory does not grow with video length.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memory import peak_rss_mib  # a sibling module (benchmarks/ is on the path when a script here runs)


def make_driver(path: Path, frames: int) -> int:
    """A driving clip of ``frames`` frames: the demo render, looped (cut short on the last loop)."""
    from enliven import api
    from enliven.io.video import VideoReader, VideoWriter

    once = path.with_name("once.mp4")
    if not once.exists():
        api.demo(once, progress=False)
    loop = list(VideoReader(once))
    with VideoWriter(path, 25) as writer:
        for i in range(frames):
            writer.write(loop[i % len(loop)])
    return frames


def per_stage(driver: Path) -> dict[str, float]:
    from enliven import api, engines
    from enliven.face.analyzer import FaceAnalyzer
    from enliven.face.crop import face_crop
    from enliven.face.paste import Paster
    from enliven.io.images import read_image
    from enliven.io.video import VideoReader
    from enliven.motion.align import AlignOptions, MotionAligner
    from enliven.motion.frame import MotionFrame
    from enliven.motion.tracking import MAX_DRIVER_FACES, describe_face, picture_thumb
    from enliven.options import AnimateOptions

    timings: dict[str, list[float]] = {k: [] for k in ("decode", "analyse", "align", "render", "paste", "encode")}

    def timed(stage, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        timings[stage].append((time.perf_counter() - t) * 1000)
        return out

    image = read_image(api.bundled_portrait())
    face = api._find_faces("portrait", image, AnimateOptions())[0]
    crop = face_crop(face.landmarks)
    landmarks = crop.to_crop(face.landmarks)
    engine = engines.create("mesh")
    state = engine.prepare(crop.cut(image), landmarks)
    paster = Paster(crop, state.paste_mask, image.shape[:2])
    aligner = MotionAligner(landmarks, 25, AlignOptions())
    t = time.perf_counter()
    images = list(VideoReader(driver))
    timings["decode"] = [(time.perf_counter() - t) * 1000 / len(images)]
    rendered = []
    def analyse(analyzer, t, image):
        # As the tracking stage reads a driving clip: up to MAX_DRIVER_FACES faces, each described for tracking.
        faces = analyzer.detect(image)
        for f in faces:
            describe_face(t, 0, f.landmarks, image)
        picture_thumb(image)
        return faces

    with FaceAnalyzer(static=False, max_faces=MAX_DRIVER_FACES) as analyzer:
        for t, image in enumerate(images):
            face = timed("analyse", analyse, analyzer, t, image)[0]
            target = timed("align", lambda f: aligner(MotionFrame.from_landmarks(f.landmarks)), face)
            crop_frame = timed("render", engine.render, state, target)
            rendered.append(timed("paste", paster.paste, image, crop_frame))
    with tempfile.TemporaryDirectory() as tmp:
        import av

        with av.open(str(Path(tmp) / "e.mp4"), "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            for frame in rendered:
                packets = timed("encode", stream.encode, av.VideoFrame.from_ndarray(frame, format="rgb24"))
                for p in packets:
                    out.mux(p)
            for p in stream.encode():
                out.mux(p)
    return {k: float(np.median(v[5:] if len(v) > 10 else v)) for k, v in timings.items()}


def end_to_end(driver: Path, **engine_options) -> tuple[int, float]:
    from enliven import api

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = api.animate(api.bundled_portrait(), driver, Path(tmp) / "out.mp4", progress=False,
                             engine_options=engine_options)
        return result.frames, time.perf_counter() - t


# The mesh engine's detail from the driver's pixels, each against the plain warp with a dark mouth (what it drew
# before the mouth work): drawn teeth, the driver's own mouth inside (its frames decoded a second time and cut
# around its mouth: the default), and its wrinkles too (its whole face cut, and each shot's reference frame).
DETAIL = {
    "dark gap, no wrinkles": {"mouth": "source", "wrinkles": 0.0},
    "drawn teeth": {"mouth": "synth", "wrinkles": 0.0},
    "driver's mouth (default)": {"mouth": "auto", "wrinkles": 0.0},
    "driver's mouth + wrinkles": {"mouth": "auto", "wrinkles": 1.0},
}


def detail_cost(driver: Path, rounds: int = 3) -> dict[str, list[float]]:
    """Seconds per frame end to end for each of DETAIL, rounds alternating in this run."""
    seconds: dict[str, list[float]] = {name: [] for name in DETAIL}
    for _ in range(rounds):
        for name, options in DETAIL.items():
            frames, total = end_to_end(driver, **options)
            seconds[name].append(total / frames)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=125, help="driving clip length in frames (default: 125, 5 s)")
    parser.add_argument("--repeat", type=int, default=4, help="length multiple for the memory check")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < 1 or args.repeat < 1:
        parser.error("--frames and --repeat must be at least 1")
    if args.child:  # one end-to-end job, report peak RSS
        frames, seconds = end_to_end(Path(args.child))
        peak_mib = peak_rss_mib()
        print(f"{frames} {seconds:.3f} {peak_mib:.1f}")
        return

    with tempfile.TemporaryDirectory() as tmp:
        short, long = Path(tmp) / "short.mp4", Path(tmp) / "long.mp4"
        n_short = make_driver(short, args.frames)
        n_long = make_driver(long, args.frames * args.repeat)
        print(f"machine: {os.cpu_count()} CPU cores; source 512x512 portrait, crop 512², driving clip 512² @ 25 fps")
        stages = per_stage(short)
        print("\nper stage, median ms per frame (each stage alone):")
        for k, v in stages.items():
            print(f"  {k:<8} {v:7.2f} ms")
        serial = sum(stages.values())
        print(f"  {'sum':<8} {serial:7.2f} ms  -> {1000 / serial:.1f} frames/s if run one after another")
        costs = detail_cost(short)
        base = float(np.median(costs["dark gap, no wrinkles"]))
        print("\ndetail from the driver's pixels, end to end, median ms per frame over alternating rounds (spread):")
        for name, values in costs.items():
            ms = 1000 * np.array(values)
            print(f"  {name:<36} {np.median(ms):7.2f} ms ({ms.min():.2f}-{ms.max():.2f})  "
                  f"{np.median(values) / base:5.3f}x")

        frames, seconds = end_to_end(short)
        print(f"\nend to end (enliven.animate, {frames} frames, incl. start-up): {frames / seconds:.1f} frames/s")

        print("\npeak memory, fresh process per run:")
        for label, path, n in (("short", short, n_short), (f"x{args.repeat}", long, n_long)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
            ).stdout.split()
            f, s, peak = int(out[0]), float(out[1]), float(out[2])
            print(f"  {label:<6} {n:5d} frames: {f / s:5.1f} frames/s end to end, peak RSS {peak:7.1f} MiB")


if __name__ == "__main__":
    main()
