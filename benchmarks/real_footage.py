"""Does a still portrait survive real driving footage? A hard driving clip built from known pieces, and the
figures of issue 15 measured on what each engine makes of it.

    python benchmarks/real_footage.py [--out DIR] [--engines mesh,keypoint --weights DIR] [--keep] [--control]

1. Builds a 640×480, 25 fps, 11.4 s driving clip from two public-domain photos animated by enliven itself:
   person A (Grace Hopper, US Navy photo, shipped with matplotlib) talking to synthetic speech (``--audio``
   driving: mouth, blinks, head sway); a cut to person B (Eileen Collins, NASA, the bundled portrait) talking in
   close-up (``preset:talk``); a cut back to A zoomed out; 10 black frames; A sliding out past the right edge
   and back. The ground truth (per frame: person, shot, where A's face is) goes to ``truth.json``.
2. Drives two portraits with it, each engine with default options: a tight head-and-shoulders crop of the
   bundled portrait (B herself) and Grace Hopper's photo (A herself). The sources are the two people in the
   clip, so B's identity leaking into B's portrait (or A's into A's) cannot show here.
3. Measures each output, and a "still" baseline (the source itself, unmoving, through the same encoder and
   meters: a known-good placement, to show what the meters read when nothing is wrong):
   - whole and in place (``enliven.evaluation.placement``, dlib only, every 5th frame): found rate, shift p90 / max,
     zoom min / max, identity distance mean / max;
   - lip-open correlation with person A, within each of A's shots (MediaPipe on the clip and on the output);
   - cut jump: the output's largest frame-to-frame landmark move at a cut over its largest within a shot (both
     moves printed too: one big jump inside a shot would make any cut look small).
   ``--control`` adds each engine following the driver's camera in full (``follow_camera=True``), a row the
   shift meter should fail.

Writes ``clip.mp4``, ``truth.json``, the two sources and ``results.json`` to ``--out``; the rendered videos
only with ``--keep``. 3–4 minutes on 2 CPU cores for the mesh engine (a minute more with ``--control``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from enliven import api, engines
from enliven.errors import EnlivenError
from enliven.evaluation.placement import NEAR, DlibFaces, PlacementMeter, verdicts
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.geometry import lip_open_ratio
from enliven.face.landmarks import NUM_MESH
from enliven.io.images import read_image, write_image
from enliven.io.video import VideoReader, VideoWriter

WIDTH, HEIGHT, FPS = 640, 480, 25
BACKGROUND = (58, 62, 70)  # a plain studio grey around the placed photos
SAMPLE_EVERY = 5  # dlib on every 5th frame, as issue 15 measures
RATE = 16000  # synthetic speech sample rate
LIP_TARGET, JUMP_TARGET = 0.6, 1.0
MIN_PAIRS = 10  # frames of a shot needed before its lip correlation means anything
# A mouth whose lip-open ratio varies less than this (std over a shot) is not moving: MediaPipe's jitter on a
# still mouth reads ~0.001, a talking one 0.04–0.06; correlating jitter would give chance values either way.
MIN_LIP_STD = 0.01


@dataclass(frozen=True)
class Shot:
    """One shot of the clip: who is in it, for how many frames, their face width in the clip (pixels) and
    where their face centre is, as (frame in shot, x, y) keyframes interpolated linearly."""

    person: str | None  # "A", "B", or None for black frames
    frames: int
    face_width: float = 0.0
    path: tuple[tuple[float, float, float], ...] = ()

    def centre(self, t: int) -> tuple[float, float]:
        times, xs, ys = zip(*self.path)
        return float(np.interp(t, times, xs)), float(np.interp(t, times, ys))


OUT_OF_VIEW_X = WIDTH + 150  # face centre a whole face width past the right edge
SHOTS = (
    Shot("A", 100, 150, ((0, 320, 200),)),  # A talking, a medium shot
    Shot("B", 50, 260, ((0, 320, 230),)),  # cut to B in close-up
    Shot("A", 50, 72, ((0, 330, 215),)),  # cut back to A, zoomed out
    Shot(None, 10),  # black
    Shot("A", 75, 150, ((0, 320, 200), (10, 320, 200), (35, OUT_OF_VIEW_X, 200), (45, OUT_OF_VIEW_X, 200),
                        (70, 320, 200))),  # A slides out past the edge and back
)


def hopper_photo() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def mediapipe_face(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and width (pixels) of the largest face's landmark box, or a one-line error."""
    with FaceAnalyzer(static=True) as analyzer:
        faces = analyzer.detect(image)
    if not faces:
        raise EnlivenError("no face found in a benchmark photo")
    x0, y0, x1, y1 = faces[0].box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), x1 - x0


# ---------------------------------------------------------------------------------------------------- the clip


def speech(seconds: float, seed: int = 15) -> np.ndarray:
    """Syllables of a 140 Hz voice with irregular lengths, loudness and pauses (seeded): audio driving turns
    them into a mouth that opens by varying amounts, blinks and head sway — a talking person to follow."""
    rng = np.random.default_rng(seed)
    samples = np.zeros(int(seconds * RATE), np.float32)
    t = 0.15
    while t < seconds - 0.4:
        length = rng.uniform(0.12, 0.32)
        local = np.arange(int(length * RATE)) / RATE
        voice = sum(np.sin(2 * np.pi * 140 * k * local) / k for k in range(1, 10))
        start = int(t * RATE)
        samples[start : start + len(local)] += rng.uniform(0.02, 0.09) * np.sin(np.pi * local / length) * voice
        pause = rng.uniform(0.3, 0.7) if rng.random() < 0.2 else rng.uniform(0.02, 0.08)  # a breath now and then
        t += length + pause
    return samples


def write_wav(path: Path, samples: np.ndarray) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def render_people(work: Path) -> dict[str, Path]:
    """Person A talking for every A frame of the clip (audio driving) and person B talking (a preset)."""
    a_frames = sum(s.frames for s in SHOTS if s.person == "A")
    wav = work / "speech.wav"
    write_wav(wav, speech(a_frames / FPS + 0.2))
    videos = {"A": work / "person_a.mp4", "B": work / "person_b.mp4"}
    api.animate(hopper_photo(), wav, videos["A"], progress=False)
    api.animate(api.bundled_portrait(), "preset:talk", videos["B"], progress=False)
    return videos


def place(picture: np.ndarray, scale: float, offset: tuple[float, float]) -> np.ndarray:
    """``picture`` scaled by ``scale`` and moved by ``offset`` onto the clip's canvas (area averaging when
    shrinking, so a zoomed-out face is not aliased)."""
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
    resized = cv2.resize(picture, size, interpolation=interpolation)
    move = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    return cv2.warpAffine(resized, move, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)


def compose_clip(videos: dict[str, Path], faces: dict[str, tuple[np.ndarray, float]], path: Path) -> list[dict]:
    """Write the clip shot by shot, each person's frames taken in order; return the per-frame ground truth."""
    streams = {name: iter(VideoReader(video)) for name, video in videos.items()}
    truth = []
    with VideoWriter(path, FPS, crf=16) as writer:
        for index, shot in enumerate(SHOTS):
            for t in range(shot.frames):
                frame, record = _shot_frame(shot, t, streams, faces)
                writer.write(frame)
                truth.append({"frame": len(truth), "shot": index, "person": shot.person, **record})
    return truth


def _shot_frame(shot: Shot, t: int, streams: dict[str, Iterator], faces: dict) -> tuple[np.ndarray, dict]:
    if shot.person is None:
        return np.zeros((HEIGHT, WIDTH, 3), np.uint8), {"a_face": None, "a_visible": 0.0}
    picture = next(streams[shot.person])
    centre, width = faces[shot.person]
    scale = shot.face_width / width
    target = np.array(shot.centre(t))
    frame = place(picture, scale, tuple(target - scale * centre))
    if shot.person != "A":
        return frame, {"a_face": None, "a_visible": 0.0}
    # Where A's face is: the still photo's face box carried by this frame's placement (the few pixels of head
    # sway in A's animation are not included).
    half = shot.face_width / 2
    box = (target[0] - half, target[1] - half, target[0] + half, target[1] + half)
    return frame, {"a_face": [round(v, 1) for v in (*target, shot.face_width)], "a_visible": _inside(box)}


def _inside(box: tuple[float, float, float, float]) -> float:
    """Fraction of a box's area inside the clip's picture."""
    w = max(0.0, min(box[2], WIDTH) - max(box[0], 0))
    h = max(0.0, min(box[3], HEIGHT) - max(box[1], 0))
    return round(w * h / ((box[2] - box[0]) * (box[3] - box[1])), 3)


def tight_crop_of_bundled_portrait(out: Path) -> Path:
    """A head-and-shoulders crop where the face fills most of the frame (1.8 face widths square), at 384²."""
    image = read_image(api.bundled_portrait())
    centre, width = mediapipe_face(image)
    side = 1.8 * width
    x0, y0 = centre[0] - side / 2, centre[1] - side / 2 + 0.1 * side  # a little lower: chin and collar in
    k = 384 / side
    crop = cv2.warpAffine(image, np.float32([[k, 0, -k * x0], [0, k, -k * y0]]), (384, 384), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    path = out / "collins_tight.png"
    write_image(path, crop)
    return path


# ----------------------------------------------------------------------------------------------- measurements


def driver_lips(clip: Path) -> np.ndarray:
    """Lip-open ratio of the face in each clip frame (MediaPipe, video mode); NaN where none is found."""
    with FaceAnalyzer(static=False) as analyzer:
        return np.array([_lip(analyzer.detect(frame)) for frame in VideoReader(clip)])


def _lip(faces) -> float:
    return float(lip_open_ratio(faces[0].landmarks)) if faces else math.nan


@dataclass
class OutputReading:
    """What the meters read on one output video."""

    placement: dict
    lips: np.ndarray  # per frame, NaN where MediaPipe finds no face
    moves: np.ndarray  # per frame: mean landmark move from the frame before (pixels), NaN if either is missing


def read_output(video: Path, source: np.ndarray, dlib_faces: DlibFaces) -> OutputReading:
    meter = PlacementMeter(source, faces=dlib_faces)
    lips, moves, previous = [], [], None
    with FaceAnalyzer(static=False) as analyzer:
        for i, frame in enumerate(VideoReader(video)):
            if i % SAMPLE_EVERY == 0:
                meter.measure(i, frame)
            faces = analyzer.detect(frame)
            points = faces[0].landmarks[:NUM_MESH, :2] if faces else None
            lips.append(_lip(faces))
            both = points is not None and previous is not None
            moves.append(float(np.linalg.norm(points - previous, axis=1).mean()) if both else math.nan)
            previous = points
    return OutputReading(meter.summary(), np.array(lips), np.array(moves))


def lip_correlations(truth: list[dict], driver: np.ndarray, output: np.ndarray) -> dict[int, float]:
    """Pearson correlation of the output's lip-open ratio with A's, per shot of A, over frames where both
    faces were read; NaN for a shot with under ``MIN_PAIRS`` such frames or a mouth that does not move."""
    shots = np.array([t["shot"] for t in truth])
    result = {}
    for index, shot in enumerate(SHOTS):
        if shot.person != "A":
            continue
        keep = (shots == index) & np.isfinite(driver) & np.isfinite(output)
        a, b = driver[keep], output[keep]
        enough = keep.sum() >= MIN_PAIRS and a.std() >= MIN_LIP_STD and b.std() >= MIN_LIP_STD
        result[index] = float(np.corrcoef(a, b)[0, 1]) if enough else math.nan
    return result


def cut_jump(truth: list[dict], moves: np.ndarray, unit: float) -> dict:
    """The output's largest landmark move at a cut (from a shot's last frame to the next one's first) and within
    a shot, in ``unit`` (the source's face width) per frame, their frames, and the ratio of the two. The ratio
    alone can flatter: a big jump inside a shot makes any cut look small, so both moves are kept."""
    shots = np.array([t["shot"] for t in truth])
    at_cut = np.zeros(len(shots), bool)
    at_cut[1:] = shots[1:] != shots[:-1]
    cut, within = _largest(moves, at_cut), _largest(moves, ~at_cut)  # frame 0 has no move (NaN): left out
    ratio = cut[0] / within[0] if within[0] > 0 else math.nan
    return {"ratio": ratio, "cut": cut[0] / unit, "cut_frame": cut[1], "within": within[0] / unit,
            "within_frame": within[1], "cuts_measured": int((at_cut & np.isfinite(moves)).sum())}


def _largest(moves: np.ndarray, where: np.ndarray) -> tuple[float, int | None]:
    measured = np.flatnonzero(where & np.isfinite(moves))
    if not len(measured):
        return math.nan, None
    frame = int(measured[np.argmax(moves[measured])])
    return float(moves[frame]), frame


# ---------------------------------------------------------------------------------------------------- running


def still_video(source: np.ndarray, frames: int, path: Path) -> Path:
    """The source itself for every frame, through the same encoder as a render: a known-good placement."""
    with VideoWriter(path, FPS) as writer:
        for _ in range(frames):
            writer.write(source)
    return path


def measure_row(name: str, video: Path, source: np.ndarray, truth: list[dict], driver: np.ndarray,
                dlib_faces: DlibFaces) -> dict:
    reading = read_output(video, source, dlib_faces)
    lips = lip_correlations(truth, driver, reading.lips)
    jump = cut_jump(truth, reading.moves, unit=mediapipe_face(source)[1])
    return {"row": name, "placement": reading.placement, "lip_r": lips, "cut_jump": jump,
            "output_face_lost": int(np.isnan(reading.lips).sum())}


# ``--control``: the driver's camera zoom and shift followed in full, as enliven did before the tracking stage.
# A control row: it shows the meters reading a portrait that is pulled about, so a good row is good for a reason.
CONTROL = dict(follow_camera=True)


def run(out: Path, engine_names: list[str], weights: str | None, keep: bool, control: bool = False) -> list[dict]:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say(f"rendering the people (A: {hopper_photo().name}, B: the bundled portrait) …")
    people = render_people(work)
    faces = {"A": mediapipe_face(read_image(hopper_photo())), "B": mediapipe_face(read_image(api.bundled_portrait()))}
    clip = out / "clip.mp4"
    truth = compose_clip(people, faces, clip)
    (out / "truth.json").write_text(json.dumps({"shots": [asdict(s) for s in SHOTS], "frames": truth}, indent=1))
    say(f"wrote {clip}: {len(truth)} frames, shots " + ", ".join(_shot_label(s) for s in SHOTS))
    driver = driver_lips(clip)
    a_frames = [t["frame"] for t in truth if t["person"] == "A"]
    say(f"person A's lips read in {np.isfinite(driver[a_frames]).sum()} of {len(a_frames)} A frames of the clip")

    sources = {"collins_tight (B herself)": tight_crop_of_bundled_portrait(out), "hopper (A herself)": hopper_photo()}
    dlib_faces = DlibFaces()
    rows = []
    for label, path in sources.items():
        image = read_image(path)
        video = still_video(image, len(truth), work / f"{path.stem}_still.mp4")
        rows.append(measure_row(f"{label} × still", video, image, truth, driver, dlib_faces))
        plain = [(e, {}) for e in engine_names]
        for engine, options in plain + [(e, CONTROL) for e in engine_names if control]:
            name = f"{engine}, camera followed" if options else engine
            video = work / f"{path.stem}_{engine}{'_camera_followed' if options else ''}.mp4"
            say(f"animating {path.name} with the clip, engine {name} …")
            result = api.animate(path, clip, video, engine=engine, weights=weights, progress=False, **options)
            rows.append(measure_row(f"{label} × {name}", video, image, truth, driver, dlib_faces))
            rows[-1]["render_fps"] = result.frames / result.seconds
    if keep:
        say(f"rendered videos kept in {work}")
    else:
        shutil.rmtree(work)
    say(f"done in {time.perf_counter() - started:.0f} s")
    return rows


def _shot_label(shot: Shot) -> str:
    if shot.person is None:
        return f"black×{shot.frames}"
    return f"{shot.person}×{shot.frames} ({shot.face_width:g} px face)"


# --------------------------------------------------------------------------------------------------- printing


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _num(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


COLUMNS = (  # (header, target, width)
    ("source × engine", "target", 34),
    ("found", "≥ 98 %", 9),
    ("shift p90 / max", "≤ 0.15 / 0.25", 15),
    ("zoom min / max", "(1 / 1)", 14),
    ("ID dist mean / max", "≤ 0.35 / 0.45", 18),
    ("lip r in A's shots", f"each ≥ {LIP_TARGET}", 18),
    ("cut jump ×", f"≤ {JUMP_TARGET:g}", 10),
)


def table_cells(row: dict) -> list[str]:
    p, v = row["placement"], verdicts(row["placement"])
    lips = list(row["lip_r"].values())
    lip_ok = all(math.isfinite(r) and r >= LIP_TARGET for r in lips)
    ratio = row["cut_jump"]["ratio"]
    return [
        row["row"],
        f"{100 * p['found_rate']:.1f} % {_mark(v['found_rate'])}",
        f"{_num(p['shift_p90'])} / {_num(p['shift_max'])} {_mark(v['shift_p90'] and v['shift_max'])}",
        f"{_num(p['zoom_min'])} / {_num(p['zoom_max'])}",
        f"{_num(p['identity_mean'])} / {_num(p['identity_max'])} {_mark(v['identity_mean'] and v['identity_max'])}",
        f"{' '.join(_num(r) for r in lips)} {_mark(lip_ok)}",
        f"{_num(ratio)} {_mark(math.isfinite(ratio) and ratio <= JUMP_TARGET)}",
    ]


def _line(cells: list[str], first: int) -> str:
    widths = [first] + [width for _, _, width in COLUMNS[1:]]
    return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()


def details(row: dict) -> str:
    p, jump = row["placement"], row["cut_jump"]
    text = (f"{row['row']}: largest landmark move at a cut {_num(jump['cut'], 3)} face widths (frame "
            f"{jump['cut_frame']}), within a shot {_num(jump['within'], 3)} (frame {jump['within_frame']}); "
            f"MediaPipe lost the output's face in {row['output_face_lost']} frame(s)")
    if "render_fps" in row:
        text += f"; rendered at {row['render_fps']:.1f} frames/s"
    if p["missing"]:
        shown = ", ".join(map(str, p["missing_frames"][:12])) + (" …" if p["missing"] > 12 else "")
        text += f"; no face near the source's in {p['missing']} of {p['sampled']} sampled frames: {shown}"
    return text


def print_table(rows: list[dict]) -> None:
    a_shots = ", ".join(str(i) for i, s in enumerate(SHOTS) if s.person == "A")
    print(f"Shots: {', '.join(f'{i} {_shot_label(s)}' for i, s in enumerate(SHOTS))}; lip r is given for A's "
          f"shots {a_shots}.")
    first = max([COLUMNS[0][2]] + [len(row["row"]) for row in rows])
    print(_line([header for header, _, _ in COLUMNS], first))
    print(_line([target for _, target, _ in COLUMNS], first))
    for row in rows:
        print(_line(table_cells(row), first))
    print()
    for row in rows:
        print(details(row))
    print()
    print(f"found: dlib finds a face within {NEAR:g} source face widths of the source face (every {SAMPLE_EVERY}th "
          "frame); shift in source face widths; zoom: face size over the source's; ID dist: dlib 128-d euclidean "
          "distance to the source (~0.6 separates two people). lip r: Pearson correlation of the output's lip-open "
          "ratio with person A's in each of A's shots (MediaPipe on both; – where too few frames were read or a "
          f"mouth moves less than {MIN_LIP_STD} (std), as in the still baseline). cut jump: the output's largest "
          "frame-to-frame mean landmark move at a cut over its largest within a shot (MediaPipe; the still baseline "
          "reads its jitter).")
    print("The sources are the two people of the clip (B's tight crop, A's photo): identity leaking from B into "
          "B's portrait (or A into A's) cannot show in these figures.")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="real-footage", metavar="DIR", help="output folder (default: real-footage)")
    parser.add_argument("--engines", default="mesh", help="comma-separated engines (default: mesh)")
    parser.add_argument("--weights", metavar="DIR", help="weights folder, for engines that need them (keypoint)")
    parser.add_argument("--keep", action="store_true", help="keep the rendered videos (in DIR/work)")
    parser.add_argument("--control", action="store_true",
                        help="also render each engine following the driver's camera zoom and shift in full "
                             "(--follow-camera): a control row that shows the meters failing")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    known = engines.available()
    unknown = [e for e in args.engines if e not in known]
    if unknown or not args.engines:
        parser.error(f"unknown engine(s) {', '.join(unknown) or '(none given)'}; available: {', '.join(known)}")
    if "keypoint" in args.engines and not args.weights:
        parser.error("the keypoint engine needs --weights DIR (the official LivePortrait weights)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # face_recognition_models' pkg_resources notice
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        rows = run(out, args.engines, args.weights, args.keep, args.control)
    except (EnlivenError, OSError) as exc:
        print(f"real_footage: {exc}", file=sys.stderr)
        return 2
    (out / "results.json").write_text(json.dumps(_plain(rows), indent=1))
    print_table(rows)
    return 0


def _plain(value):
    """JSON without NaN: null where a figure could not be measured."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    os.environ.setdefault("GLOG_minloglevel", "2")
    sys.exit(main())
