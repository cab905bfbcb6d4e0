"""The Python entry points. The CLI (and any UI) only parses arguments and calls these.

Data flow, one frame at a time so memory stays flat however long the video:
source → face analysis → crop → engine.prepare; driving → motion frames → align → engine.render (or a
windowed engine's render_stream, which reads a bounded look-ahead of targets) → paste back → encode.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from enliven import engines
from enliven.errors import EnlivenError, NoFaceError
from enliven.face.analyzer import Face, FaceAnalyzer
from enliven.face.crop import Crop
from enliven.face.paste import Paster
from enliven.io.files import atomic_output, check_writable
from enliven.io.images import is_image_path, read_image, write_image
from enliven.io.video import VideoReader, VideoWriter
from enliven.motion.align import AlignOptions, Controls, MotionAligner
from enliven.motion.audio import speak
from enliven.motion.frame import MotionFrame, MotionSequence, TrackingSummary
from enliven.motion.landmark_image import draw_motion_frame
from enliven.motion.liveportrait_pkl import load_liveportrait_pkl
from enliven.motion.smooth import smooth_motion
from enliven.motion.sources import PRESET_PREFIX, built_on_the_face, open_driving, video_motion
from enliven.motion.template import save_template
from enliven.motion.tracking import TrackOptions
from enliven.options import AnimateOptions

MAX_FACES = 8  # faces looked for with --all-faces
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


@dataclass(frozen=True)
class AnimateResult:
    output: Path
    frames: int
    fps: float
    seconds: float
    lost_frames: int  # driving frames where the followed face was not seen (motion held, then eased to rest)
    engine: str
    faces: int = 1  # faces animated in the source
    tracking: TrackingSummary | None = None  # a driving video's shots and who was followed

    def summary(self) -> str:
        speed = self.frames / self.seconds if self.seconds > 0 else float("inf")
        faces = f", {self.faces} faces" if self.faces > 1 else ""
        text = f"wrote {self.output}: {self.frames} frame(s) at {self.fps:g} fps{faces}, {speed:.1f} frames/s"
        if self.tracking is not None:
            shots = self.tracking.shots
            text += f"; driver: {self.tracking.followed}, {shots} shot{'s' if shots != 1 else ''}"
        if self.lost_frames:
            text += f"; driver's face lost in {self.lost_frames} frame(s) (motion held, then eased to rest)"
        return text

    def to_dict(self) -> dict:
        """Plain values, for ``--json``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["output"] = str(self.output)
        out["tracking"] = None if self.tracking is None else asdict(self.tracking)
        return out


def bundled_portrait() -> Path:
    """The public-domain portrait that ``enliven demo`` animates (see assets/LICENSE-portrait.txt)."""
    return Path(str(resources.files("enliven.assets").joinpath("portrait.png")))


def demo(output: str | os.PathLike, preset: str = "demo", **options) -> AnimateResult:
    """Animate the bundled portrait with a built-in motion preset; no input files needed."""
    return animate(bundled_portrait(), PRESET_PREFIX + preset, output, **options)


@dataclass
class _Face:
    """One face being animated: its crop, engine state, paste-back and motion alignment."""

    crop: Crop
    landmarks: np.ndarray  # in crop pixels
    state: engines.SourceState
    paster: Paster
    motion: MotionSequence | None = None
    aligner: MotionAligner | None = None

    @property
    def shape(self) -> np.ndarray:
        return MotionFrame.from_landmarks(self.landmarks).shape.astype(np.float64)


def _find_faces(path: str | os.PathLike, image: np.ndarray, opts: AnimateOptions) -> list[Face]:
    with FaceAnalyzer(static=True, max_faces=max(MAX_FACES if opts.all_faces else 1, opts.face_index + 1)) as analyzer:
        faces = analyzer.detect(image)
    if not faces:
        raise NoFaceError(f"no face found in {path}")
    if opts.all_faces:
        return faces
    if opts.face_index >= len(faces):
        raise EnlivenError(f"face index {opts.face_index} asked for, but {path} has {len(faces)} face(s)")
    return [faces[opts.face_index]]


def _retime(frames: Iterable, src_fps: float, dst_fps: float) -> Iterator:
    """Resample motion from ``src_fps`` to ``dst_fps`` by nearest frame in time (duration is kept)."""
    if abs(src_fps - dst_fps) < 1e-6:
        yield from frames
        return
    out_index, count, frame = 0, 0, None
    for i, frame in enumerate(frames):
        count = i + 1
        while int(out_index * src_fps / dst_fps + 0.5) <= i:
            yield frame
            out_index += 1
    # The last frame's time span ends at the clip's end: output frames whose nearest source frame would lie past
    # it (at twice the rate, the very last one) are still its.
    while out_index < int(round(count * dst_fps / src_fps)):
        yield frame
        out_index += 1


def _progress(total: int | None, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False, dynamic_ncols=True)


def _ticking(items: Iterable, bar: tqdm, on_frame=None) -> Iterator:
    """``items``, ticking ``bar`` and calling ``on_frame(done, total)`` (``AnimateOptions.on_frame``) after each."""
    for done, item in enumerate(items, 1):  # counted here: a disabled bar counts nothing
        yield item
        bar.update()
        if on_frame is not None:
            on_frame(done, bar.total)


@dataclass
class Animation:
    """A prepared animation of a still picture: iterate ``frames()`` to get full pictures, one at a time."""

    image: np.ndarray
    faces: list[_Face]
    engine: engines.Engine
    motion: MotionSequence
    per_face: bool

    @property
    def fps(self) -> float:
        return self.motion.fps

    def _motion_frames(self) -> Iterator[list[MotionFrame]]:
        if self.per_face:
            yield from (list(frames) for frames in zip(*(iter(f.motion) for f in self.faces)))
        else:
            for frame in self.motion:
                yield [frame] * len(self.faces)

    def render(self, frames: list[MotionFrame]) -> np.ndarray:
        """One picture for one motion frame per face (per-frame engines only: a windowed engine needs the stream,
        see ``frames``)."""
        out = self.image.copy()
        for face, frame in zip(self.faces, frames):
            face.paster.paste(out, self.engine.render(face.state, face.aligner(frame), frame), out=out)
        return out

    def frames(self, fps: float | None = None) -> Iterator[np.ndarray]:
        """Rendered pictures, at ``fps`` (motion resampled in time) or the motion's own rate.

        Each face's engine gets the stream of its (target, frame) pairs (``engines.render_stream``): a per-frame
        engine renders each as it comes, a windowed one reads at most its look-ahead ahead. With several faces
        the motion is shared through ``tee``, which holds only what one face's engine has read past the others.
        """
        motion = _retime(self._motion_frames(), self.fps, fps or self.fps)
        per_face = itertools.tee(motion, len(self.faces)) if len(self.faces) > 1 else (motion,)
        streams = [
            engines.render_stream(self.engine, face.state, _targets(face, frames, i))
            for i, (face, frames) in enumerate(zip(self.faces, per_face))
        ]
        try:
            for crops in zip(*streams):
                out = self.image.copy()
                for face, crop in zip(self.faces, crops):
                    face.paster.paste(out, crop, out=out)
                yield out
        finally:  # stopped early or failed: the engines' workers end now, not when the streams are collected,
            for stream in streams:  # and so do the motion's decoders and files
                if hasattr(stream, "close"):
                    stream.close()
            for face in self.faces:
                face.motion.close()

    def still(self, controls: Controls) -> np.ndarray:
        """The picture with every face at rest and ``controls`` applied (live editing: the faces were found and
        prepared once, so each call is one render and paste; per-frame engines only, like ``render``)."""
        out = self.image.copy()
        for face in self.faces:
            rest = face.motion.reference  # presets and driving images hold the face's own shape at rest
            if rest is None:
                raise EnlivenError("a still edit needs motion built on the face: prepare it with a preset")
            options = replace(face.aligner.options, controls=controls, smooth=False)
            target = MotionAligner(face.landmarks, self.fps, options, reference=rest)(rest)
            face.paster.paste(out, self.engine.render(face.state, target, rest), out=out)
        return out


def _targets(face: _Face, frames: Iterable[list[MotionFrame]], index: int) -> Iterator[tuple[np.ndarray, MotionFrame]]:
    """The aligned target of each motion frame for one face (the ``index``-th of each frame's list)."""
    for per_face in frames:
        frame = per_face[index]
        yield face.aligner(frame), frame


def _opencv_on_one_thread() -> None:
    """OpenCV's own thread pool off, for the whole process (once: the call is a no-op when it is off already).

    The pipeline runs its stages on threads of its own (decode, the driver's first pass, the warps, encode); OpenCV
    splitting each remap or resize of a 512² crop over its pool as well only adds hand-offs, and its idle workers
    spin (``sched_yield``) on the cores the other stages need. Measured on 2 cores: 0.3 s less wall time and about
    0.6 s less system time over a 448-frame driver. Set before the pipeline's threads start, never toggled back
    while they run (OpenCV's pool is reconfigured by this call)."""
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def prepare_animation(
    image: np.ndarray, driving: str | os.PathLike, source_name: str = "source", **options
) -> Animation:
    """Set up the animation of ``image`` (an RGB array) by ``driving``; see ``animate`` for the inputs."""
    opts = AnimateOptions.from_kwargs(**options)
    _opencv_on_one_thread()
    align = _align(opts)
    engine = _create_engine(opts, align)
    # Presets, driving images and audio are built on each face's own shape; a video's motion is shared, and its
    # first pass (every frame read) runs on a thread of its own while the source's faces are found and prepared.
    per_face = built_on_the_face(driving)
    reading = None
    if not per_face:
        reading = _Beside(open_driving, driving, None, engine.driving_crop, opts.allow_pickle, opts.tracking,
                          opts.progress, _anchor_crops(engine))
    faces = []
    try:
        for face in _find_faces(source_name, image, opts):
            crop = opts.crop.crop(face.landmarks)
            landmarks = crop.to_crop(face.landmarks)
            state = engine.prepare(crop.cut(image), landmarks)
            faces.append(_Face(crop, landmarks, state, Paster(crop, state.paste_mask, image.shape[:2])))
    except BaseException:
        if reading is not None:
            reading.stop()  # the source's error is the one to report (as when the driver was read after it)
        raise
    shared = reading.result() if reading is not None else None
    if shared is not None and not shared.has_landmarks and not _reads_keypoints(engine):
        raise EnlivenError(f"{driving} holds LivePortrait keypoint motion only: use --engine keypoint")
    for face in faces:
        face.motion = open_driving(driving, face.shape, engine.driving_crop) if per_face else shared
        if getattr(engine, "reads_audio", False):  # a speech-driven model reads the audio itself
            engine.set_audio(face.state, face.motion.audio)
        face.aligner = MotionAligner(
            face.landmarks,
            face.motion.fps,
            replace(align, smooth=opts.smooth and face.motion.measured, pose_limits=engine.pose_limits),
            reference=face.motion.reference,
        )
    return Animation(image, faces, engine, faces[0].motion, per_face)


class _Beside:
    """``open_driving(*args, stop=...)`` on a thread of its own; ``result()`` waits for it (its error raised here),
    ``stop()`` asks a video's first pass to end at its next frame and waits a little for it."""

    STOP_WAIT_S = 10.0  # a first pass stopped at its next frame ends within this; else it is left (a daemon)

    def __init__(self, open_fn, *args):
        self._stop = threading.Event()
        self._value = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = open_fn(*args, stop=self._stop)
            except BaseException as exc:  # noqa: BLE001 - raised again by result() on the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True, name="enliven-driver")
        self._thread.start()

    def result(self):
        while self._thread.is_alive():
            self._thread.join(0.5)  # in steps, so Ctrl-C reaches the caller
        error, self._error = self._error, None  # held here it would tie the traceback's frames in a cycle
        if error is not None:
            raise error
        return self._value

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.STOP_WAIT_S)


def _reads_keypoints(engine) -> bool:
    """Whether ``engine`` renders LivePortrait keypoint motion (``MotionFrame.keypoints``), as a template imported
    from a LivePortrait ``.pkl`` holds it without landmarks (``Engine.reads_keypoints``)."""
    return getattr(engine, "reads_keypoints", False)


def _anchor_crops(engine) -> bool:
    """Whether ``engine`` reads each shot's reference frame from pixels too (``Engine.anchor_crops``; the engines
    that measure motion from the driver's crops do)."""
    return getattr(engine, "anchor_crops", True)


def animate_text(
    source: str | os.PathLike, text: str, output: str | os.PathLike, voice: str = "en", **options
) -> AnimateResult:
    """Speak ``text`` with espeak-ng and animate ``source`` to it (the speech is muxed into the output)."""
    output = check_writable(output, inputs=(source,))
    with tempfile.TemporaryDirectory(prefix=".enliven-tts-", dir=output.parent) as tmp:
        wav = speak(text, Path(tmp) / "speech.wav", voice)
        return animate(source, wav, output, **options)


# Engines built under ``keeping_engines``, by the options they were built with (most recent last).
_KEPT_ENGINES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("enliven_kept_engines", default=None)


@contextlib.contextmanager
def keeping_engines(kept: dict | None = None, most: int = 2) -> Iterator[dict]:
    """Within this block, an engine built with the same options as an earlier one is that engine again, so a
    worker running job after job (``enliven batch``'s) loads its model once. At most ``most`` are kept, in ``kept``
    (yielded; pass it to the next block to carry them over: a worker enters one block per job, on whichever thread
    runs it). Engines keep per-picture state in their ``SourceState``, never on themselves, which makes this safe."""
    kept = {"engines": {}} if kept is None else kept
    kept["most"] = max(1, most)
    kept.setdefault("engines", {})
    token = _KEPT_ENGINES.set(kept)
    try:
        yield kept
    finally:
        _KEPT_ENGINES.reset(token)


def _create_engine(opts: AnimateOptions, align: AlignOptions) -> engines.Engine:
    engine_options = dict(opts.engine_options)
    if opts.weights is not None:
        engine_options["weights"] = opts.weights
    kept = _KEPT_ENGINES.get()
    if kept is None:
        return engines.create(opts.engine, align=align, **engine_options)
    key = repr((opts.engine, sorted(engine_options.items()), align))
    engine = kept["engines"].pop(key, None) or engines.create(opts.engine, align=align, **engine_options)
    kept["engines"][key] = engine  # re-inserted: the dict's order is the order of last use
    while len(kept["engines"]) > kept["most"]:
        kept["engines"].pop(next(iter(kept["engines"])))
    return engine


def animate(
    source: str | os.PathLike, driving: str | os.PathLike, output: str | os.PathLike, **options
) -> AnimateResult:
    """Animate the face in ``source`` with ``driving`` motion and write ``output``.

    ``source`` is a picture, or a video whose face is re-animated (video-to-video editing). ``driving`` is
    a video (any format PyAV reads), an image (single expression transfer; the output is then an image),
    a motion template ``.npz`` (``enliven motion extract``), or ``preset:NAME``. Options: see
    ``AnimateOptions``. Inputs and the output path are checked before any heavy work; the output appears
    only when complete.
    """
    opts = AnimateOptions.from_kwargs(**options)
    started = time.perf_counter()
    output = check_writable(output, inputs=(source, driving))
    driving_is_image = not str(driving).startswith(PRESET_PREFIX) and is_image_path(driving)
    if driving_is_image and not is_image_path(output):
        raise EnlivenError(f"a driving image gives a still result: name the output .png or .jpg, not {output.name}")
    if not driving_is_image and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise EnlivenError(f"output must be a video file (.mp4), not {output.name}")
    if not is_image_path(source):
        if driving_is_image:
            raise EnlivenError("a video source needs a driving video, template or preset, not an image")
        # Refused before the engine's weights load (minutes on a big model), not after: a windowed engine's frames
        # come from one reference picture, denoised together.
        if not engines.describe(opts.engine).video_source:
            able = [n for n, d in engines.descriptors().items() if d.video_source]
            raise EnlivenError(
                f"engine {opts.engine!r} animates still pictures; for a video source use {' or '.join(able)}")
        engine = _create_engine(opts, _align(opts))
        return _animate_video_source(source, driving, output, opts, engine, started)
    job = prepare_animation(read_image(source), driving, str(source), **options)
    name, faces = job.engine.name, len(job.faces)
    if driving_is_image:
        write_image(output, next(job.frames()))
        return AnimateResult(output, 1, 0.0, time.perf_counter() - started, job.motion.lost, name, faces)

    fps = opts.fps or job.fps
    total = int(round(job.motion.length * fps / job.fps)) if job.motion.length else None
    audio = job.motion.audio if opts.audio else None
    count = _encode(job.frames(fps), output, fps, audio, total, "animating", opts)
    seconds = time.perf_counter() - started
    return AnimateResult(output, count, fps, seconds, job.motion.lost, name, faces, job.motion.tracking)


def _encode(pictures: Iterable[np.ndarray], output: Path, fps: float, audio: Path | None, total: int | None,
            desc: str, opts: AnimateOptions) -> int:
    """Write ``pictures`` as the video ``output`` (appearing only when complete, with ``audio``'s track muxed),
    with a progress bar and ``on_frame`` calls; returns the frame count. The one encode loop of every animation."""
    count = 0
    pictures = iter(pictures)
    try:
        with atomic_output(output) as tmp, _progress(total, desc, opts.progress) as bar:
            with VideoWriter(tmp, fps, audio_from=audio, crf=opts.crf) as writer:
                for picture in _ticking(pictures, bar, opts.on_frame):
                    writer.write(picture)
                    count += 1
    finally:
        # A failure (the encoder's, say) leaves the renderer suspended mid-stream; closed here, its threads (a
        # windowed engine's workers, the driver's decoder) and open files end now. Left to the garbage collector,
        # they would wait for it: the failure that stopped the loop refers back to this frame through the writer
        # that keeps it.
        if hasattr(pictures, "close"):
            pictures.close()
    return count


def _align(opts: AnimateOptions) -> AlignOptions:
    return AlignOptions(
        opts.relative, opts.multiplier, normalize_lip=opts.normalize_lip, smooth=opts.smooth, controls=opts.controls,
        follow_camera=opts.follow_camera,
    )


def _animate_video_source(
    source: str | os.PathLike, driving: str | os.PathLike, output: Path, opts: AnimateOptions, engine, started: float
) -> AnimateResult:
    """Video-to-video editing: re-animate the source video's face, keep everything else of each frame.

    Length is the shorter of the two, at the source's frame rate. Each source frame is cropped and
    prepared on its own; the driver's expression and head-rotation change are applied to it while it
    keeps its own size and place. Source frames where no face is found are written unchanged.
    """
    _opencv_on_one_thread()
    reader = VideoReader(source)
    session: dict = {"video_source": True, "fps": reader.fps}
    frames_in = iter(reader)
    first = next(frames_in, None)
    if first is None:
        raise EnlivenError(f"no frames in {source}")
    with FaceAnalyzer(static=False) as analyzer:
        first_faces = analyzer.detect(first)
        if not first_faces:
            raise NoFaceError(f"no face found in the first frame of {source}")
        first_shape = MotionFrame.from_landmarks(first_faces[0].landmarks).shape.astype(np.float64)
        crop_spec, progress = engine.driving_crop, opts.progress
        motion = open_driving(driving, first_shape, crop_spec, opts.allow_pickle, opts.tracking, progress,
                              _anchor_crops(engine))
        if not motion.has_landmarks and not _reads_keypoints(engine):
            raise EnlivenError(f"{driving} holds LivePortrait keypoint motion only: use --engine keypoint")
        # The source moves, so smooth the driver's motion itself rather than the target landmarks.
        frames = smooth_motion(motion, motion.fps) if opts.smooth and motion.measured else iter(motion)
        align = replace(_align(opts), smooth=False, pose_limits=engine.pose_limits)
        aligner = MotionAligner(first_faces[0].landmarks, reader.fps, align, reference=motion.reference)
        lengths = [n for n in (reader.frame_count, motion.length) if n]
        total = min(lengths) if lengths else None
        audio = (motion.audio or (Path(source) if reader.has_audio else None)) if opts.audio else None
        kept = 0

        def edited() -> Iterator[np.ndarray]:
            nonlocal kept
            for image, frame in zip(itertools.chain([first], frames_in), frames):
                faces = analyzer.detect(image)
                if not faces:  # no face in this source frame: it is kept as it is
                    kept += 1
                    yield image
                    continue
                crop = opts.crop.crop(faces[0].landmarks)
                landmarks = crop.to_crop(faces[0].landmarks)
                state = engine.prepare(crop.cut(image), landmarks, session)
                rendered = engine.render(state, aligner(frame, source_landmarks=landmarks), frame)
                yield Paster(crop, state.paste_mask, image.shape[:2]).paste(image, rendered)

        count = _encode(edited(), output, reader.fps, audio, total, "editing", opts)
    seconds = time.perf_counter() - started
    return AnimateResult(output, count, reader.fps, seconds, motion.lost + kept, engine.name, tracking=motion.tracking)


def extract_motion(
    video: str | os.PathLike,
    output: str | os.PathLike,
    progress: bool = True,
    engine: str | None = None,
    weights: str | None = None,
    tracking: TrackOptions = TrackOptions(),
) -> tuple[int, int]:
    """Save a driving video's motion as a template ``.npz``; returns (frames, frames with the face lost).
    ``tracking``: whose motion, measured from which reference frames (kept in the template, shot by shot).

    With ``engine="keypoint"`` the template also carries LivePortrait's motion (its motion extractor on
    the driver's crops), so the keypoint engine replays it without the video.
    """
    output = check_writable(output, inputs=(video,))
    if output.suffix.lower() != ".npz":
        raise EnlivenError(f"motion templates are .npz files, not {output.name}")
    extractor = None
    if engine and engine != "mesh":
        if not engines.describe(engine).extracts:  # known before any weights load
            able = [n for n, d in engines.descriptors().items() if d.extracts]
            raise EnlivenError(f"engine {engine!r} cannot store its own motion in a template (that takes: "
                               f"{', '.join(able)}); landmark motion alone needs no --engine")
        extractor = engines.create(engine, weights=weights)
    motion = video_motion(video, extractor.driving_crop if extractor else None, tracking, progress)
    frames: Iterable[MotionFrame] = motion
    if extractor is not None:
        frames = _with_keypoints(motion, extractor)
    with _progress(motion.length, "extracting motion", progress) as bar:
        count = save_template(output, motion, _ticking(frames, bar))
    return count, motion.lost


def _with_keypoints(motion: MotionSequence, extractor) -> Iterator[MotionFrame]:
    """Frames with the engine's own motion of their crops (and of their shot's reference), crops dropped."""
    anchors: dict[int, MotionFrame] = {}
    for frame in motion:
        anchor = frame.anchor
        if anchor is not None and anchor.crop is not None:
            if id(anchor) not in anchors:
                anchors[id(anchor)] = replace(anchor, crop=None, keypoints=extractor.extract(anchor.crop))
            anchor = anchors[id(anchor)]
        keypoints = extractor.extract(frame.crop) if frame.crop is not None else None
        yield replace(frame, crop=None, crop_landmarks=None, keypoints=keypoints, anchor=anchor)


def import_liveportrait_template(pkl: str | os.PathLike, output: str | os.PathLike, allow_pickle: bool = False) -> int:
    """Convert a LivePortrait ``.pkl`` template to our ``.npz`` (keypoint motion); returns the frame count."""
    output = check_writable(output, inputs=(pkl,))
    if output.suffix.lower() != ".npz":
        raise EnlivenError(f"motion templates are .npz files, not {output.name}")
    motion = load_liveportrait_pkl(pkl, allow_pickle)
    return save_template(output, motion)


def render_motion(
    template: str | os.PathLike, output: str | os.PathLike, size: int = 512, progress: bool = True
) -> int:
    """Draw a motion (template or ``preset:NAME``) as expression-aware landmark images, for inspection."""
    output = check_writable(output, inputs=(template,))
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise EnlivenError(f"output must be a video file (.mp4), not {output.name}")
    if not (str(template).startswith(PRESET_PREFIX) or Path(template).suffix.lower() == ".npz"):
        raise EnlivenError(f"motion render takes a template .npz or preset:NAME, not {template}")
    motion = open_driving(template)
    count = 0
    with atomic_output(output) as tmp, _progress(motion.length, "drawing", progress) as bar:
        with VideoWriter(tmp, motion.fps) as writer:
            reference = motion.reference
            for frame in _ticking(motion, bar):
                reference = reference or frame
                writer.write(draw_motion_frame(frame, frame.anchor or reference, size))  # each shot from its own
                count += 1
    return count
