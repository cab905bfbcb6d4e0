"""Speed and memory of the default pipeline at 512²: a per-stage budget, end-to-end frames/s, against a baseline.

    python benchmarks/speed.py [--clip driver.mp4] [--baseline COMMIT] [--rounds 3] [--frames 125] [--repeat 4]
                               [--no-detail] [--no-memory]

1. The driving clip: ``--clip`` (a real one: shots, a moving head, noise), or a 512² clip of ``--frames`` frames
   made from the bundled portrait animated by the demo preset (looped as often as needed).
2. Rounds, alternating in this run (``--rounds``; the order swaps every round so neither side always runs on a
   warmer or cooler machine): each side runs in a fresh process, importing the library of its own commit — this
   working tree, and ``--baseline``'s (its ``src`` exported by ``git archive`` into a temporary folder, put first
   on that process's path). Each run times, in this order:
   - **start-up**: ``import enliven.api``, then finding the source's face and preparing the engine (MediaPipe's
     graphs built, the source cut and measured); also the time from the start of ``enliven.animate`` to its first
     frame handed to the encoder (the driver's first pass over the whole clip is in it);
   - **end to end**: ``enliven.animate`` on the clip, wall time, frames/s;
   - **per stage**, each alone over the clip's frames: decode, analysis (the face mesh as the first pass reads a
     driver), tracking (what the first pass keeps of each face, and the cut test), alignment, render (through
     ``engines.render_stream``, as the pipeline renders), paste, encode.
     A stage both sides run the same way measures the machine's noise.
3. The table: each stage in ms per frame (median over rounds) per side, the ratio baseline/this (above 1: this
   tree is faster) with its spread over rounds (min–max of the per-round ratios), and the end-to-end frames/s.
4. Unless ``--no-detail``: each kind of the mesh engine's detail from the driver's pixels (``DETAIL``) end to
   end, in alternating rounds, against the plain warp with a dark mouth (this tree only).
5. Unless ``--no-memory``: the end-to-end job in fresh processes on the clip and on a clip ``--repeat`` times as
   long, with the peak resident memory of each: flat means memory does not grow with video length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memory import peak_rss_mib  # a sibling module (benchmarks/ is on the path when a script here runs)

STAGES = ("decode", "analysis", "tracking", "alignment", "render", "paste", "encode")
STAGE_FRAMES = 150  # frames each stage is timed over alone (the clip's first ones)


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


def loop_clip(clip: Path, path: Path, times: int) -> int:
    """``clip`` played ``times`` times in a row (for the memory check)."""
    from enliven.io.video import VideoReader, VideoWriter

    reader = VideoReader(clip)
    frames = list(reader)
    with VideoWriter(path, reader.fps) as writer:
        for _ in range(times):
            for frame in frames:
                writer.write(frame)
    return len(frames) * times


def start_up() -> dict[str, float]:
    """Seconds to import the library, and to find the source's face and prepare the engine (a fresh process)."""
    t = time.perf_counter()
    from enliven import api, engines
    from enliven.face.crop import face_crop
    from enliven.io.images import read_image
    from enliven.options import AnimateOptions

    imported = time.perf_counter() - t
    t = time.perf_counter()
    image = read_image(api.bundled_portrait())
    face = api._find_faces("portrait", image, AnimateOptions())[0]
    crop = face_crop(face.landmarks)
    engines.create("mesh").prepare(crop.cut(image), crop.to_crop(face.landmarks))
    return {"import": imported, "prepare": time.perf_counter() - t}


def per_stage(driver: Path, limit: int = STAGE_FRAMES) -> dict[str, float]:
    """Median ms per frame of each stage, each alone over the first ``limit`` frames of ``driver``."""
    from enliven import api, engines
    from enliven.face.analyzer import FaceAnalyzer
    from enliven.face.crop import face_crop
    from enliven.face.paste import Paster
    from enliven.io.images import read_image
    from enliven.io.video import VideoReader
    from enliven.motion import tracking
    from enliven.motion.align import AlignOptions, MotionAligner
    from enliven.motion.frame import MotionFrame
    from enliven.options import AnimateOptions

    timings: dict[str, list[float]] = {k: [] for k in STAGES}

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
    reader = VideoReader(driver)
    images = []
    t = time.perf_counter()
    for picture in reader:  # decode in its background thread, as the pipeline reads (the wait per frame here)
        images.append(picture)
        if len(images) == limit:
            break
    timings["decode"] = [(time.perf_counter() - t) * 1000 / len(images)]

    found_per_frame = []
    with FaceAnalyzer(static=False, max_faces=tracking.MAX_DRIVER_FACES) as analyzer:
        for picture in images:
            found_per_frame.append(timed("analysis", analyzer.detect, picture))
    previous = None
    for t, (picture, found) in enumerate(zip(images, found_per_frame)):
        def describe(t=t, picture=picture, found=found):
            nonlocal previous
            thumb = tracking.picture_thumb(picture)
            change = 0.0 if previous is None else float(np.abs(thumb - previous).mean())
            previous = thumb
            return [tracking.describe_face(t, 0, f.landmarks, picture) for f in found], change
        timed("tracking", describe)
    seen, targets = [], []
    for picture, found in zip(images, found_per_frame):
        if found:
            points = found[0].landmarks
            targets.append((timed("alignment", lambda p: aligner(MotionFrame.from_landmarks(p)), points), None))
            seen.append(picture)
    # Rendered as the pipeline renders (engines.render_stream: a per-frame engine frame by frame, one with a
    # stream of its own through it), so the stage's time per frame is the stream's over all frames.
    t = time.perf_counter()
    crops = list(engines.render_stream(engine, state, targets))
    timings["render"] = [(time.perf_counter() - t) * 1000 / max(len(crops), 1)]
    rendered = [timed("paste", paster.paste, picture, crop_frame) for picture, crop_frame in zip(seen, crops)]
    timings["encode"] = [encode_ms(rendered, reader.fps)]
    return {k: float(np.median(v[5:] if len(v) > 10 else v)) for k, v in timings.items()}


def encode_ms(pictures: list[np.ndarray], fps: float) -> float:
    """ms per frame to encode ``pictures`` through the library's writer (its settings; wall time, close included)."""
    from enliven.io.video import VideoWriter

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with VideoWriter(Path(tmp) / "e.mp4", fps) as writer:
            for picture in pictures:
                writer.write(picture)
        return (time.perf_counter() - t) * 1000 / max(len(pictures), 1)


def end_to_end(driver: Path, **engine_options) -> tuple[int, float, float]:
    """(frames, seconds, seconds to the first frame) of ``enliven.animate`` on ``driver``."""
    from enliven import api

    first: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()

        def on_frame(done, total):
            if not first:
                first.append(time.perf_counter() - t)

        result = api.animate(api.bundled_portrait(), driver, Path(tmp) / "out.mp4", progress=False,
                             engine_options=engine_options, on_frame=on_frame)
        return result.frames, time.perf_counter() - t, first[0] if first else float("nan")


def child(driver: Path, stages: bool) -> dict:
    """One side's run in this fresh process (see the module's text, item 2)."""
    out: dict = {"start_up": start_up()}
    import enliven

    out["library"] = str(Path(enliven.__file__).parent)
    frames, seconds, first = end_to_end(driver)
    out.update(frames=frames, seconds=seconds, first_frame=first, peak_mib=peak_rss_mib())
    if stages:
        out["stages"] = per_stage(driver)
    return out


# The mesh engine's detail from the driver's pixels, each against the plain warp with a dark mouth (what it drew
# before the mouth work): drawn teeth, the driver's own mouth inside (cut around its mouth from the driver's
# frames: the default), and its wrinkles too (its whole face cut, and each shot's reference frame).
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
            frames, total, _ = end_to_end(driver, **options)
            seconds[name].append(total / frames)
    return seconds


def export_commit(commit: str, folder: Path) -> Path:
    """``commit``'s ``src`` folder written under ``folder`` (git archive: the shared checkout is left as it is)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", commit, "src"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        sys.exit(f"cannot export {commit}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "src"


def run_side(driver: Path, src: Path | None, stages: bool = True) -> dict:
    """One fresh process importing the library from ``src`` (None: this working tree's install)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in [env.get("PYTHONPATH")] if p])
    args = [sys.executable, __file__, "--child", str(driver)] + ([] if stages else ["--no-stages"])
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"a benchmark run failed ({'baseline' if src else 'this tree'}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values) -> str:
    values = np.asarray(values, float)
    return f"{np.median(values):.2f} ({values.min():.2f}–{values.max():.2f})"


def compare(driver: Path, baseline: str | None, rounds: int) -> None:
    """Alternating fresh-process rounds of this tree and ``baseline``; prints the budget table."""
    with tempfile.TemporaryDirectory(prefix="enliven-baseline-") as tmp:
        src = export_commit(baseline, Path(tmp)) if baseline else None
        runs: dict[str, list[dict]] = {"this": [], "base": []}
        for r in range(rounds):
            order = ["this", "base"] if r % 2 == 0 else ["base", "this"]
            for side in order:
                if side == "base" and src is None:
                    continue
                runs[side].append(run_side(driver, src if side == "base" else None))
                last = runs[side][-1]
                print(f"  round {r + 1} {side:<4}: {last['frames'] / last['seconds']:6.1f} frames/s end to end "
                      f"({last['library']})", flush=True)
    sides = ["base", "this"] if baseline else ["this"]
    frames = runs["this"][0]["frames"]
    print(f"\nper-stage budget, ms per frame (median over {rounds} rounds; each stage alone over the first "
          f"{min(frames, STAGE_FRAMES)} frames){'; ratio = baseline / this, above 1 faster' if baseline else ''}:")
    header = "  stage        " + "".join(f"{s:>24}" for s in sides) + ("      ratio (spread)" if baseline else "")
    print(header)

    def row(name: str, get, higher_better: bool = False) -> None:
        values = {s: [get(run) for run in runs[s]] for s in sides}
        line = f"  {name:<12} " + "".join(f"{spread(values[s]):>24}" for s in sides)
        if baseline:
            ratios = np.array(values["base"]) / np.maximum(np.array(values["this"]), 1e-9)
            ratios = 1.0 / ratios if higher_better else ratios  # always the speed-up: above 1, this tree is faster
            line += f"      {spread(ratios)}"
        print(line)

    for stage in STAGES:
        row(stage, lambda run, stage=stage: run["stages"][stage])
    row("start-up", lambda run: 1000 * sum(run["start_up"].values()) / run["frames"])
    print("  (start-up amortised over the clip; in seconds below)")
    print("\nend to end (enliven.animate on the clip, fresh process):")
    row("ms/frame", lambda run: 1000 * run["seconds"] / run["frames"])
    row("frames/s", lambda run: run["frames"] / run["seconds"], higher_better=True)
    row("import s", lambda run: run["start_up"]["import"])
    row("prepare s", lambda run: run["start_up"]["prepare"])
    row("1st frame s", lambda run: run["first_frame"])
    row("peak MiB", lambda run: run["peak_mib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, help="a driving video (default: the demo render, looped)")
    parser.add_argument("--frames", type=int, default=125, help="made clip's length in frames (default: 125, 5 s)")
    parser.add_argument("--baseline", help="a commit to compare against, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default: 3)")
    parser.add_argument("--repeat", type=int, default=4, help="length multiple for the memory check")
    parser.add_argument("--no-detail", action="store_true", help="skip the mesh engine's detail costs")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-stages", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < 1 or args.repeat < 1 or args.rounds < 1:
        parser.error("--frames, --rounds and --repeat must be at least 1")
    if args.child:  # one side's run: a JSON line
        print(json.dumps(child(Path(args.child), not args.no_stages)))
        return
    if args.clip is not None and not args.clip.is_file():
        parser.error(f"no such clip: {args.clip}")

    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.mp4"
        if args.clip is not None:
            short = args.clip
        else:
            make_driver(short, args.frames)
        print(f"machine: {os.cpu_count()} CPU cores; source 512x512 portrait, crop 512², driver {short.name}")
        compare(short, args.baseline, args.rounds)

        if not args.no_detail:
            costs = detail_cost(short)
            base = float(np.median(costs["dark gap, no wrinkles"]))
            print("\ndetail from the driver's pixels, end to end, median ms per frame over alternating rounds "
                  "(spread):")
            for name, values in costs.items():
                ms = 1000 * np.array(values)
                print(f"  {name:<36} {np.median(ms):7.2f} ms ({ms.min():.2f}-{ms.max():.2f})  "
                      f"{np.median(values) / base:5.3f}x")

        if not args.no_memory:
            long = Path(tmp) / "long.mp4"
            loop_clip(short, long, args.repeat)
            print("\npeak memory, fresh process per run:")
            for label, path in (("clip", short), (f"x{args.repeat}", long)):
                run = run_side(path, None, stages=False)
                print(f"  {label:<6} {run['frames']:5d} frames: {run['frames'] / run['seconds']:5.1f} frames/s end "
                      f"to end, peak RSS {run['peak_mib']:7.1f} MiB")


if __name__ == "__main__":
    main()
