"""Self- and cross-reenactment benchmarks, streamed: one rendered frame and one reference frame at a time.

Self-reenactment (LivePortrait Table 2 style): a video's first frame with a face is the source, the whole
video drives it, and the video itself, from the source frame on, is the ground truth. Cross-reenactment: every
source picture × every driving clip; no ground truth, so we measure identity kept, expression and pose carried
over, and steadiness.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from enliven.api import prepare_animation
from enliven.errors import EnlivenError, NoFaceError
from enliven.evaluation import metrics as M
from enliven.evaluation.placement import DlibFaces, Placement, PlacementMeter
from enliven.face import geometry
from enliven.face.analyzer import FaceAnalyzer
from enliven.face.crop import face_crop
from enliven.io.images import IMAGE_SUFFIXES, read_image
from enliven.io.video import VideoReader
from enliven.motion.frame import MotionFrame

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
FACE_CROP = dict(size=256, scale=1.6, vy=-0.05)  # a tight crop: the face, little background
# Placement figures that are not means (a percentile, extremes), kept per case under these names.
PLACEMENT_EXTREMES = {
    "face_shift_p90": "shift_p90",
    "face_shift_max": "shift_max",
    "face_zoom_min": "zoom_min",
    "face_zoom_max": "zoom_max",
    "id_distance_max": "identity_max",
}

# Metrics that need weights we cannot ship or download here: reported as skipped, never faked.
OPTIONAL = {
    "LPIPS": "needs the lpips package and its AlexNet/VGG weights",
    "FID": "needs Inception-v3 weights (e.g. pytorch-fid) and a reference set",
    "FVD": "needs the I3D video network weights",
    "ArcFace": "needs ArcFace (insightface) weights; identity here uses dlib's 128-d embedding instead",
}


def list_files(folder: str | os.PathLike, suffixes: set[str]) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EnlivenError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise EnlivenError(f"no {'/'.join(sorted(suffixes))} files in {folder}")
    return files


@dataclass
class Series:
    """Per-frame values of each metric, and counts of frames where a face was lost."""

    values: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def summary(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {k: M.finite_mean(v) for k, v in self.values.items()}
        out.update(self.counts)
        return out


def dlib_backend(every: int) -> tuple[DlibFaces | None, str | None]:
    """(dlib's detector, shape model and embedding, None) or (None, why the dlib measures are not taken)."""
    if every <= 0:
        return None, "turned off (--identity-every 0)"
    try:
        return DlibFaces(), None
    except EnlivenError as exc:
        return None, str(exc)


def identity_backend(every: int) -> tuple[Callable | None, str | None]:
    """(embedding function, None) or (None, why identity is not measured)."""
    faces, why = dlib_backend(every)
    return (faces.embed, None) if faces else (None, f"identity: skipped, {why}")


def _reference_identity(embed: Callable | None, image: np.ndarray) -> np.ndarray | None:
    if embed is None:
        return None
    with FaceAnalyzer(static=True) as still:
        faces = still.detect(image)
    return embed(image, faces[0].landmarks) if faces else None


def _ratios(points: np.ndarray) -> tuple[np.ndarray, float]:
    return geometry.eye_open_ratios(points), float(geometry.lip_open_ratio(points))


def _paired(job, video: Path, label: str, progress: bool, jitter: tuple[M.JitterMeter, M.JitterMeter]) -> Iterator:
    """Rendered pictures beside the video's frames, with the faces tracked in each: yields (index, rendered,
    video frame, faces in rendered, faces in video frame) and feeds the two jitter meters."""
    with FaceAnalyzer(static=False) as out_faces, FaceAnalyzer(static=False) as video_faces:
        frames = zip(job.frames(), VideoReader(video))
        bar = tqdm(frames, total=job.motion.length, desc=label, unit="frame", disable=not progress, leave=False)
        for i, (out, other) in enumerate(bar):
            found_out, found_other = out_faces.detect(out), video_faces.detect(other)
            jitter[0].add(found_out[0].landmarks if found_out else None)
            jitter[1].add(found_other[0].landmarks if found_other else None)
            yield i, out, other, found_out, found_other


def first_face_frame(video: Path) -> tuple[int, np.ndarray]:
    """(index, picture) of the first frame of ``video`` in which a face is found: clips often open on black or a
    title card. NoFaceError if no frame has one (the clip cannot be self-reenacted)."""
    frames = iter(VideoReader(video))
    count = 0
    try:
        with FaceAnalyzer(static=True) as still:
            for index, frame in enumerate(frames):
                count += 1
                if still.detect(frame):
                    return index, frame
    finally:
        frames.close()  # stops the decoder thread when a face is found early
    if not count:
        raise NoFaceError(f"no frames in {video}")
    raise NoFaceError(f"no face in any of the {count} frames of {video}")


class _AfterLeadIn:
    """Feeds a jitter meter only from frame ``start`` on: the lead-in before the source frame is not scored."""

    def __init__(self, meter: M.JitterMeter, start: int):
        self.meter, self.left = meter, start

    def add(self, points: np.ndarray | None) -> None:
        if self.left:
            self.left -= 1
        else:
            self.meter.add(points)


def self_reenactment(
    video: Path,
    engine: str,
    embed: Callable | None = None,
    identity_every: int = 5,
    progress: bool = True,
    source: tuple[int, np.ndarray] | None = None,
    **options,
) -> Series:
    """Score one engine re-creating ``video`` from its first frame with a face (``source``: that frame's index
    and picture, from ``first_face_frame``, found here if not given; ``embed``: see ``identity_backend``).

    The frames before the source frame are rendered (the motion runs from the clip's start) but not scored: the
    source did not exist yet, and the ground truth there has no face to compare with."""
    start, first = source if source is not None else first_face_frame(video)
    # The source is the first frame with the face, so its motion is measured from that frame (its shot's first
    # frame where the followed face is seen), not from the shot's neutral frame.
    job = prepare_animation(first, video, str(video), engine=engine, reference="first", progress=progress, **options)
    series = Series()
    jitter_out, jitter_truth = M.JitterMeter(), M.JitterMeter()
    started = time.perf_counter()
    reference = _reference_identity(embed, first)
    scored_jitter = (_AfterLeadIn(jitter_out, start), _AfterLeadIn(jitter_truth, start))
    label = f"{video.name} [{engine}]"
    for i, out, truth, found_out, found_truth in _paired(job, video, label, progress, scored_jitter):
        if i < start:
            continue
        series.add("l1", M.l1(out, truth))
        series.add("psnr", M.psnr(out, truth))
        series.add("ssim", M.ssim(out, truth))
        if not found_truth:
            series.count("truth_face_lost")
        else:
            crop = face_crop(found_truth[0].landmarks, **FACE_CROP)
            a, b = crop.cut(out), crop.cut(truth)
            series.add("face_l1", M.l1(a, b))
            series.add("face_psnr", M.psnr(a, b))
            series.add("face_ssim", M.ssim(a, b))
            mouth = M.mouth_scores(out, truth, found_truth[0].landmarks)
            if mouth is not None:  # the real mouth is open: is its inside there in the output?
                series.add("mouth_ssim", mouth[0])
                series.add("mouth_brightness", mouth[1])
        if not found_out:
            series.count("output_face_lost")
        if found_out and found_truth:
            p, t = found_out[0].landmarks, found_truth[0].landmarks
            series.add("lmd", M.landmark_distance(p, t))
            (eo, lo), (et, lt) = _ratios(p), _ratios(t)
            series.add("eye_error", float(np.abs(eo - et).mean()))
            series.add("lip_error", abs(lo - lt))
            for name, a_, b_ in zip(("yaw", "pitch", "roll"), found_out[0].pose.angles(), found_truth[0].pose.angles()):
                series.add(f"{name}_error", abs(a_ - b_))
            if reference is not None and (i - start) % identity_every == 0:
                series.add("identity", M.cosine(reference, embed(out, p)))
    series.values["frames_per_second"] = [len(series.values["l1"]) / (time.perf_counter() - started)]
    series.values["jitter_ratio"] = [jitter_out.value / jitter_truth.value if jitter_truth.value else math.nan]
    series.counts["frames"] = len(series.values["l1"])
    return series


def cross_reenactment(
    source: Path,
    driving: Path,
    engine: str,
    embed: Callable | None = None,
    identity_every: int = 5,
    progress: bool = True,
    dlib_faces: DlibFaces | None = None,
    **options,
) -> Series:
    """Score one engine animating ``source`` with ``driving``: identity, expression and pose transfer, jitter,
    and (given ``dlib_faces``) whether the face stays whole and in place, on every ``identity_every``-th frame."""
    image = read_image(source)
    job = prepare_animation(image, driving, str(source), engine=engine, progress=progress, **options)
    series = Series()
    placement = _placement_meter(image, dlib_faces, series)
    jitter_out, jitter_drv = M.JitterMeter(), M.JitterMeter()
    first_out: MotionFrame | None = None
    first_drv: MotionFrame | None = None
    started = time.perf_counter()
    reference = _reference_identity(embed, image)
    n = 0
    for i, out, _, found_out, found_drv in _paired(
        job, driving, f"{source.name}×{driving.name} [{engine}]", progress, (jitter_out, jitter_drv)
    ):
        n += 1
        if placement is not None and i % identity_every == 0:  # on every sampled frame, whatever MediaPipe sees
            _add_placement(series, placement.measure(i, out))
        if not found_out:
            series.count("output_face_lost")
        if not found_drv:
            series.count("driving_face_lost")
        if not (found_out and found_drv):
            continue
        mo, md = MotionFrame.from_landmarks(found_out[0].landmarks), MotionFrame.from_landmarks(found_drv[0].landmarks)
        first_out, first_drv = first_out or mo, first_drv or md
        # Expression: each face's change since its first frame, pose-normalised, in eye-distance units.
        change_out = mo.shape[:468] - first_out.shape[:468]
        change_drv = md.shape[:468] - first_drv.shape[:468]
        series.add("expression_error", float(np.linalg.norm(change_out - change_drv, axis=1).mean()))
        rel_out = geometry.rotation_to_angles(mo.pose.rotation @ first_out.pose.rotation.T)
        rel_drv = geometry.rotation_to_angles(md.pose.rotation @ first_drv.pose.rotation.T)
        for name, a_, b_ in zip(("yaw", "pitch", "roll"), rel_out, rel_drv):
            series.add(f"{name}_error", abs(a_ - b_))
        if reference is not None and i % identity_every == 0:
            series.add("identity", M.cosine(reference, embed(out, found_out[0].landmarks)))
    series.values["frames_per_second"] = [max(n, 1) / (time.perf_counter() - started)]
    series.values["jitter_ratio"] = [jitter_out.value / jitter_drv.value if jitter_drv.value else math.nan]
    series.counts["frames"] = n
    if placement is not None:
        _placement_summary(series, placement.summary())
    return series


def _placement_meter(image: np.ndarray, faces: DlibFaces | None, series: Series) -> PlacementMeter | None:
    """A meter for ``image``, or None (counted as ``placement_source_unseen``) when dlib sees no face in it:
    one profile portrait must not stop a whole benchmark."""
    if faces is None:
        return None
    try:
        return PlacementMeter(image, faces=faces)
    except EnlivenError:
        series.count("placement_source_unseen")
        return None


def _add_placement(series: Series, sample: Placement) -> None:
    """Per sampled frame: found 1/0 (its mean is the found rate); shift, zoom and identity distance (NaN if not
    found, so their means are over the found frames)."""
    series.add("face_found", float(sample.found))
    series.add("face_shift", sample.shift)
    series.add("face_zoom", sample.zoom)
    series.add("id_distance", sample.identity)
    if not sample.found:
        series.count("face_missing")


def _placement_summary(series: Series, summary: dict) -> None:
    """The figures that are not means as one-value series, like ``jitter_ratio``."""
    for key, name in PLACEMENT_EXTREMES.items():
        series.values[key] = [summary[name]]


def run_self(videos_dir, engines: list[str], identity_every: int = 5, progress: bool = True, **options) -> dict:
    """Self-reenactment of every video in ``videos_dir`` by every engine. A clip without a face is skipped (listed
    in ``skipped`` with the reason) and the others still run; ``source_frames`` gives each clip's source frame."""
    videos = list_files(videos_dir, VIDEO_SUFFIXES)
    embed, why_no_identity = identity_backend(identity_every)
    common = dict(embed=embed, identity_every=identity_every, progress=progress, **options)
    results, source_frames, skipped_clips = {}, {}, []
    for video in videos:
        try:
            source = first_face_frame(video)
            results[video.name] = {e: self_reenactment(video, e, source=source, **common) for e in engines}
        except NoFaceError as exc:
            skipped_clips.append(f"{video.name}: skipped, {exc}")
            continue
        source_frames[video.name] = source[0]
    if not results:
        raise EnlivenError(f"no video in {videos_dir} shows a face ({'; '.join(skipped_clips)})")
    skipped = ([why_no_identity] if why_no_identity else []) + skipped_clips
    return {"kind": "self", "engines": engines, "results": results, "skipped": skipped, "source_frames": source_frames}


def run_cross(
    sources_dir, driving_dir, engines: list[str], identity_every: int = 5, progress: bool = True, **options
) -> dict:
    sources = list_files(sources_dir, IMAGE_SUFFIXES)
    drivers = list_files(driving_dir, VIDEO_SUFFIXES)
    faces, why = dlib_backend(identity_every)
    skipped = [f"{what}: skipped, {why}" for what in ("identity", "placement")] if faces is None else []
    embed = faces.embed if faces else None
    common = dict(embed=embed, identity_every=identity_every, progress=progress, dlib_faces=faces, **options)
    results = {
        f"{s.name} × {d.name}": {e: cross_reenactment(s, d, e, **common) for e in engines}
        for s in sources
        for d in drivers
    }
    return {"kind": "cross", "engines": engines, "results": results, "skipped": skipped}
