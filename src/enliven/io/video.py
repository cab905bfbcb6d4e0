"""Streamed video decode and encode with PyAV: one frame in memory at a time (plus a short queue).

Decoding and encoding each run in a background thread (FFmpeg releases the GIL), so they overlap
with analysis and rendering on the main thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from enliven.errors import EnlivenError
from enliven.io.files import require_file

_END = object()


Turn = tuple[bool, bool, bool]  # (transpose, flip rows, flip columns), applied in that order
_UPRIGHT: Turn = (False, False, False)


def _display_turn(frame, stream) -> Turn:
    """How to bring a decoded frame upright for display. Phones store the picture as the sensor saw it and
    say how to show it in the container's display matrix (a rotation by quarter turns, perhaps a mirror),
    which FFmpeg attaches to each decoded frame; older FFmpeg builds gave a clockwise ``rotate`` tag instead."""
    matrix = None
    side_data = getattr(frame, "side_data", None)
    if side_data is not None:
        try:
            found = side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        except (AttributeError, KeyError, TypeError):
            found = None
        if found is not None:
            matrix = np.frombuffer(bytes(found)[:36], np.int32).reshape(3, 3)
    if matrix is not None:
        # FFmpeg's convention: a source pixel (x, y) is shown at x' = a x + c y, y' = b x + d y.
        (a, b), (c, d) = matrix[0, :2].astype(float), matrix[1, :2].astype(float)
        if abs(a) >= abs(b):
            return (False, d < 0, a < 0)
        return (True, b < 0, c < 0)
    try:
        clockwise = int(float(stream.metadata.get("rotate", 0)))
    except (TypeError, ValueError):
        clockwise = 0
    return {90: (True, False, True), 180: (False, True, True), 270: (True, True, False)}.get(clockwise % 360, _UPRIGHT)


def _turned(image: np.ndarray, turn: Turn) -> np.ndarray:
    transpose, flip_rows, flip_cols = turn
    if transpose:
        image = image.transpose(1, 0, 2)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return np.ascontiguousarray(image) if turn != _UPRIGHT else image


def _open_input(path: str | os.PathLike):
    path = require_file(path)
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise EnlivenError(f"cannot read video {path}: {exc}") from None


class VideoReader:
    """Iterate a video's frames as RGB uint8 arrays, decoding ahead in a background thread. Frames come out
    upright as the file says to show them (phone clips carry a rotation), and ``width``/``height`` are theirs."""

    def __init__(self, path: str | os.PathLike, prefetch: int = 8):
        self.path = Path(path)
        self._prefetch = prefetch
        with _open_input(path) as container:
            if not container.streams.video:
                raise EnlivenError(f"no video stream in {self.path}")
            stream = container.streams.video[0]
            self.width = stream.codec_context.width
            self.height = stream.codec_context.height
            self.turn = _UPRIGHT  # what brings each decoded frame upright (see _display_turn)
            try:
                first = next(container.decode(stream), None)
            except (av.FFmpegError, ValueError):
                first = None  # reported when the frames are read
            if first is not None:
                self.turn = _display_turn(first, stream)
            if self.turn[0]:
                self.width, self.height = self.height, self.width
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            self.fps = float(rate)
            self.frame_count = stream.frames or (
                int(round(float(stream.duration * stream.time_base) * self.fps)) if stream.duration else 0
            )
            if not self.frame_count and container.duration:
                self.frame_count = int(round(container.duration / av.time_base * self.fps))
            self.has_audio = bool(container.streams.audio)
        if self.width <= 0 or self.height <= 0:
            raise EnlivenError(f"video has no picture size: {self.path}")

    def __iter__(self) -> Iterator[np.ndarray]:
        frames: queue.Queue = queue.Queue(maxsize=self._prefetch)
        stop = threading.Event()
        failure: list[BaseException] = []

        def decode() -> None:
            try:
                with av.open(str(self.path)) as container:
                    stream = container.streams.video[0]
                    stream.thread_type = "AUTO"
                    for frame in container.decode(stream):
                        if stop.is_set():
                            return
                        frames.put(_turned(frame.to_ndarray(format="rgb24"), self.turn))
            except (av.FFmpegError, OSError, ValueError) as exc:
                failure.append(EnlivenError(f"cannot decode video {self.path}: {exc}"))
            finally:
                frames.put(_END)

        worker = threading.Thread(target=decode, daemon=True, name="enliven-decode")
        worker.start()
        try:
            while (item := frames.get()) is not _END:
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # drain so the decoder can see the stop flag
                try:
                    frames.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()
        if failure:
            raise failure[0]


class VideoWriter:
    """Encode RGB frames to H.264 yuv420p mp4 in a background thread; optionally copy in an audio track.

    Frames of odd width or height are padded by repeating the last row/column (yuv420p needs even sizes).
    Use as a context manager; the file is complete only after a clean exit.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        audio_from: str | os.PathLike | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        queue_size: int = 8,
    ):
        self.path = Path(path)
        self.fps = fps
        self.audio_from = Path(audio_from) if audio_from else None
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._failure: list[BaseException] = []
        self._worker: threading.Thread | None = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def write(self, frame: np.ndarray) -> None:
        if self._failure:
            raise self._failure[0]
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (w + w % 2, h + h % 2)
            self._worker = threading.Thread(target=self._encode, daemon=True, name="enliven-encode")
            self._worker.start()
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._queue.put(np.ascontiguousarray(frame))
        self.frames_written += 1

    def _encode(self) -> None:
        try:
            rate = Fraction(self.fps).limit_denominator(1001)
            with av.open(str(self.path), mode="w", format="mp4") as out:
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = self._size
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(self.crf), "preset": self.preset}
                stream.thread_type = "AUTO"
                audio = _AudioCopy(out, self.audio_from) if self.audio_from else None  # streams before any packet
                while (frame := self._queue.get()) is not _END:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        out.mux(packet)
                for packet in stream.encode():
                    out.mux(packet)
                if audio is not None:
                    audio.run(self.frames_written / self.fps)
        except BaseException as exc:  # noqa: BLE001 - reported on the caller's thread
            self._failure.append(exc)
            while self._queue.get() is not _END:  # unblock the producer
                pass

    def close(self) -> None:
        if self._worker is None:
            raise EnlivenError("no frames were rendered, nothing to write")
        self._queue.put(_END)
        self._worker.join()
        if self._failure:
            raise self._failure[0]

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._worker is not None:
            self._queue.put(_END)
            self._worker.join()


class _AudioCopy:
    """Transcode the first audio stream of a file to AAC into an output container, cut to a duration."""

    def __init__(self, out, source: Path):
        self._out = out
        self._src = av.open(str(source))
        self._in = self._src.streams.audio[0] if self._src.streams.audio else None
        if self._in is None:
            self._src.close()
            return
        ctx = self._in.codec_context
        self.rate = ctx.sample_rate or 48000
        layout = "stereo" if (ctx.channels or 1) > 1 else "mono"
        self._stream = out.add_stream("aac", rate=self.rate, layout=layout)
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)

    def run(self, duration: float) -> None:
        if self._in is None:
            return
        limit = int(round(duration * self.rate))
        written = 0
        with self._src:
            for frame in self._src.decode(self._in):
                frame.pts = None
                for chunk in self._resampler.resample(frame):
                    if written + chunk.samples > limit:
                        chunk = self._head(chunk, limit - written)
                    if chunk is None:
                        break
                    written += chunk.samples
                    for packet in self._stream.encode(chunk):
                        self._out.mux(packet)
                if written >= limit:
                    break
        for packet in self._stream.encode(None):
            self._out.mux(packet)

    def _head(self, chunk, samples: int):
        """The first ``samples`` samples of a planar float frame, or None if that is nothing."""
        if samples <= 0:
            return None
        head = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk.to_ndarray()[:, :samples]), format="fltp", layout=chunk.layout.name
        )
        head.sample_rate = self.rate
        return head


def probe_duration_frames(path: str | os.PathLike) -> int:
    """Frames actually in a file (decodes it); used by tests and summaries."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
