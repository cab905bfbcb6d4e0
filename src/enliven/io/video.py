"""Streamed video decode and encode with PyAV: one frame in memory at a time (plus a short queue).

Decoding and encoding each run in a background thread (FFmpeg releases the GIL), so they overlap
with analysis and rendering on the main thread. No wait between the two sides can last forever: each side
polls for the other's failure, death or stop, and a worker stuck inside FFmpeg is given up on after
``_STALL_SECONDS`` without progress. Packets that fail to decode are skipped and counted, as ffmpeg does.
A worker's failure is raised again on the caller's thread: one EnlivenError line when the media or the disk is
at fault, the exception itself when it is a bug (see ``MEDIA_FAILURES``).
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from enliven.errors import EnlivenError
from enliven.io.files import require_file
from enliven.io.images import check_pixel_count

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


def open_media(path: str | os.PathLike, what: str = "video"):
    """The PyAV container of a media file, or one EnlivenError line saying why it cannot be read."""
    path = require_file(path)
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        message = f"cannot read {what} {path}: {_one_line(exc)}"
    # A container PyAV fails to finish opening (a tag that is not UTF-8, say) is left in a reference cycle that
    # keeps FFmpeg's descriptor of the file open until the garbage collector runs: collected now, on this failure
    # only, so nothing stays open after the one error line (the fuzz suite's damaged WAV headers found it).
    gc.collect()
    raise EnlivenError(message) from None


def _one_line(exc: BaseException) -> str:
    """An exception as the one line an EnlivenError may carry (the CLI prints exactly one line)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# What a decode or encode thread may fail with because of the user's media or machine, not because of a bug:
# FFmpeg's errors (damaged, truncated or unsupported data; PyAV's InvalidDataError and its EINVAL ValueError are
# both FFmpegErrors), OSError (a full disk, a file that vanished or cannot be read), UnicodeDecodeError (a file's
# text fields that are not UTF-8, as PyAV reads them) and our own EnlivenError (a stream damaged throughout).
# Everything else (IndexError, TypeError, AttributeError, KeyError, a plain ValueError from our own or numpy's
# code, RuntimeError, MemoryError, ...) is not the user's to fix: reworded as "cannot decode video: list index out
# of range" it would read as their file's fault and hide the bug, so it reaches the caller as itself, traceback
# and all, and the command fails loudly (a traceback, exit 1) instead of with the one line of exit 2.
MEDIA_FAILURES = (EnlivenError, av.FFmpegError, OSError, UnicodeDecodeError)


def _reported(exc: BaseException, what: str) -> BaseException:
    """What the caller raises for a worker thread's failure: one EnlivenError line for the media's or machine's
    failures (``MEDIA_FAILURES``; the original stays its cause), anything else unchanged."""
    if isinstance(exc, EnlivenError) or not isinstance(exc, MEDIA_FAILURES):
        return exc
    error = EnlivenError(f"{what}: {_one_line(exc)}")
    error.__cause__ = exc
    return error


# Waits between the caller and a worker thread poll at this interval, so that a failure, a stop or a death on
# the other side ends them. Only a worker that makes no progress at all for _STALL_SECONDS (stuck inside FFmpeg:
# a hung network mount, a codec bug) is given up on; a slow one never is, because it beats at every packet.
_POLL_SECONDS = 0.1
_STALL_SECONDS = 60.0
_STOP_SECONDS = 5.0  # how long a stopped worker gets to end before it is left behind (it is a daemon thread)

# ffmpeg's own tools skip a packet that fails to decode with a warning, and so do we; a stream where more than
# half of the packets fail is damaged throughout and ends with an error. That is judged at the end of the
# stream, or as soon as _EARLY_DAMAGE_VERDICT packets have failed, so junk fails before it has all been read.
_EARLY_DAMAGE_VERDICT = 25

_log = logging.getLogger(__name__)
_warned: set[tuple[str, str, int]] = set()


class _Heartbeat:
    """When a worker last got anywhere; a wait on it ends if it has been stuck for _STALL_SECONDS."""

    def __init__(self) -> None:
        self._at = time.monotonic()

    def beat(self) -> None:
        self._at = time.monotonic()

    def stalled(self) -> bool:
        return time.monotonic() - self._at > _STALL_SECONDS


class PacketDecoder:
    """Decode one stream packet by packet, skipping the packets that fail to decode and counting them."""

    def __init__(self, container, stream, what: str, path: Path, heartbeat: _Heartbeat | None = None):
        self._container = container
        self._stream = stream
        self._what = what  # "video" or "audio", for messages
        self._path = path
        self._heartbeat = heartbeat
        self.packets = 0
        self.damaged = 0
        self._last_error = ""

    def frames(self) -> Iterator:
        for packet in self._container.demux(self._stream):
            if self._heartbeat is not None:
                self._heartbeat.beat()
            if packet.size:  # the empty packet at the end only flushes the decoder
                self.packets += 1
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:  # InvalidDataError and its kin: this packet is damaged
                if packet.size:
                    self.damaged += 1
                    self._last_error = _one_line(exc)
                    if self.damaged >= _EARLY_DAMAGE_VERDICT:
                        self._check()
                continue
            yield from decoded
        self._check()
        self.warn()

    def _check(self) -> None:
        if self.damaged * 2 > self.packets:
            raise EnlivenError(
                f"the {self._what} of {self._path} is damaged throughout: {self.damaged} of the {self.packets} "
                f"packets read fail to decode ({self._last_error})"
            )

    def warn(self) -> None:
        """Say how many packets were skipped, once per file and count (a driving clip is read more than once)."""
        key = (str(self._path), self._what, self.damaged)
        if self.damaged and key not in _warned:
            _warned.add(key)
            _log.warning(
                f"enliven: skipped {self.damaged} of {self.packets} {self._what} packets in {self._path}: damaged"
            )


# Pixel-format conversions on the calling thread: PyAV 17+ would otherwise start (and end) a pool of swscale
# threads for every frame, which on two cores costs more than the conversion itself (measured on a 512² H.264
# clip: 0.78 against 0.48 ms a frame, and some 4 thread starts per frame), and our decode and encode threads
# already overlap with the rest of the pipeline. Same pixels as PyAV's own conversion.
def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(format="rgb24", threads=1).to_ndarray()


def _yuv420(picture: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p", threads=1)


def _put_unless_stopped(items: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` on a bounded queue unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            pass
    return False


# Frames up to this size are decoded on the reader's own thread, without FFmpeg's frame threads: beside the rest of
# the pipeline their hand-offs cost more than they give on two cores (a 512² clip's run: 10 % fewer thread switches,
# 0.2 s less CPU; decoding a 1080p clip alone, 4.4 against 3.5-4.0 ms a frame). Larger frames take long enough to
# decode that the threads pay.
ONE_THREAD_DECODE_PIXELS = 1920 * 1080


class VideoReader:
    """Iterate a video's frames as RGB uint8 arrays, decoding ahead in a background thread. Frames come out
    upright as the file says to show them (phone clips carry a rotation), and ``width``/``height`` are theirs.

    A packet that fails to decode is skipped, as ffmpeg does (its frame is missing from the output), and counted
    in ``damaged_packets``; a video where more than half of the packets fail ends with an EnlivenError."""

    def __init__(self, path: str | os.PathLike, prefetch: int = 8):
        self.path = Path(path)
        self._prefetch = prefetch
        self.damaged_packets = 0  # of the last complete read
        with open_media(path) as container:
            if not container.streams.video:
                raise EnlivenError(f"no video stream in {self.path}")
            stream = container.streams.video[0]
            self.width = stream.codec_context.width
            self.height = stream.codec_context.height
            self.turn = _UPRIGHT  # what brings each decoded frame upright (see _display_turn)
            try:
                first = next(PacketDecoder(container, stream, "video", self.path).frames(), None)
            except (EnlivenError, av.FFmpegError, ValueError):
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
        check_pixel_count(self.width, self.height, f"video {self.path}")  # the same limit as for pictures

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.read()

    def read(self, start: int = 0, then: Callable[[int, np.ndarray], object] | None = None) -> Iterator:
        """The frames from index ``start`` on (the ones before it are decoded, as they must be, but not converted).
        ``then(index, picture)``: what is given instead of each picture, worked out on the decoder's thread (a
        crop of it, say, so the caller's thread is free for other work)."""
        frames: queue.Queue = queue.Queue(maxsize=self._prefetch)
        stop = threading.Event()  # the caller stopped early or failed: the decoder ends at its next step
        heartbeat = _Heartbeat()
        failure: list[BaseException] = []

        def decode() -> None:
            try:
                with av.open(str(self.path)) as container:
                    stream = container.streams.video[0]
                    if self.width * self.height > ONE_THREAD_DECODE_PIXELS:
                        stream.thread_type = "AUTO"
                    else:
                        stream.thread_count = 1
                    decoder = PacketDecoder(container, stream, "video", self.path, heartbeat)
                    for index, frame in enumerate(decoder.frames()):
                        if index < start:
                            continue
                        picture = _turned(_rgb(frame), self.turn)
                        if then is not None:
                            picture = then(index, picture)
                        if not _put_unless_stopped(frames, picture, stop):
                            return
                    self.damaged_packets = decoder.damaged
            except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread (see _reported)
                failure.append(_reported(exc, f"cannot decode video {self.path}"))
            finally:
                _put_unless_stopped(frames, _END, stop)

        worker = threading.Thread(target=decode, daemon=True, name="enliven-decode")
        worker.start()
        try:
            while (item := self._next(frames, worker, heartbeat)) is not _END:
                yield item
        finally:
            stop.set()
            worker.join(_STOP_SECONDS)  # it sees the stop within one poll unless stuck in FFmpeg; then leave it
        if failure:
            raise failure[0]

    def _next(self, frames: queue.Queue, worker: threading.Thread, heartbeat: _Heartbeat):
        """The next decoded frame; a decoder that died or is stuck ends the wait with an EnlivenError."""
        while True:
            try:
                return frames.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not worker.is_alive() and frames.empty():
                    raise EnlivenError(f"the decoder of {self.path} stopped without finishing") from None
                if heartbeat.stalled():
                    raise EnlivenError(
                        f"decoding {self.path} made no progress for {_STALL_SECONDS:.0f} s; giving up"
                    ) from None


class _Abandoned(Exception):
    """The caller gave up on the writer (its own error, or it found the encoder stuck): stop encoding."""


class VideoWriter:
    """Encode RGB frames to H.264 yuv420p mp4 in a background thread; optionally copy in an audio track.

    Frames of odd width or height are padded by repeating the last row/column (yuv420p needs even sizes).
    Use as a context manager; the file is complete only after a clean exit. Any failure of the encoder,
    the audio copy included, reaches the caller from ``write`` or ``close``, never a hang: as one EnlivenError
    when the media or the disk failed (``MEDIA_FAILURES``), as itself when it is a bug.
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
        self.damaged_audio_packets = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._failure: list[BaseException] = []
        self._abandoned = threading.Event()
        self._heartbeat = _Heartbeat()
        self._finished = False  # the encoder wrote the whole file, not just stopped
        self._worker: threading.Thread | None = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def write(self, frame: np.ndarray) -> None:
        self._raise_failure()
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (w + w % 2, h + h % 2)
            self._heartbeat.beat()
            self._worker = threading.Thread(target=self._encode, daemon=True, name="enliven-encode")
            self._worker.start()
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def _raise_failure(self) -> None:
        if self._failure:
            raise self._failure[0]

    def _send(self, item) -> None:
        """Hand ``item`` to the encoder; an encoder that failed, died or is stuck ends the wait with its error."""
        while True:
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                self._check_encoder()

    def _check_encoder(self) -> None:
        self._raise_failure()
        if not self._worker.is_alive():
            self._raise_failure()  # it may have failed between the two looks
            raise EnlivenError("the video encoder stopped before the video was complete")
        if self._heartbeat.stalled():
            self._abandoned.set()
            raise EnlivenError(f"the video encoder made no progress for {_STALL_SECONDS:.0f} s; giving up")

    def _next_frame(self):
        """The next frame to encode, or _END; _Abandoned once the caller gives up (``__exit__`` on its error)."""
        while True:
            if self._abandoned.is_set():
                raise _Abandoned
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self._heartbeat.beat()  # waiting for a slow renderer is not being stuck
                continue
            self._heartbeat.beat()
            return item

    def _encode(self) -> None:
        audio = None
        try:
            rate = Fraction(self.fps).limit_denominator(1001)
            # The file is ours to close: when FFmpeg cannot finish a file (the disk is full) its close fails
            # and it keeps the descriptor; a long-running process would run out of them.
            with _Sink(self.path) as sink, av.open(sink, mode="w", format="mp4") as out:
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = self._size
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(self.crf), "preset": self.preset}
                # One x264 thread: encoding runs beside the renderer, which keeps the other cores busy; x264's own
                # frame threads would only add their hand-offs (512², veryfast: 1.33 ms of CPU a frame on one
                # thread, 1.44-2.2 ms with its automatic threads, on 2 cores).
                stream.thread_count = 1
                audio = _AudioCopy(out, self.audio_from) if self.audio_from else None  # streams before any packet
                encoded = 0
                while (frame := self._next_frame()) is not _END:
                    for packet in stream.encode(_yuv420(frame)):
                        out.mux(packet)
                    encoded += 1
                    if audio is not None:  # the audio as far as the video goes, while this thread waits for frames
                        audio.keep_up(encoded / self.fps, self._heartbeat)
                    sink.check()
                for packet in stream.encode():
                    self._heartbeat.beat()
                    out.mux(packet)
                if audio is not None:
                    audio.run(self.frames_written / self.fps, self._heartbeat)
                    self.damaged_audio_packets = audio.damaged_packets
            sink.check()  # the last bytes: the trailer, written as the container closed
            self._finished = True
        except _Abandoned:
            pass  # the caller has its own error to report, and deletes the file
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread (see _reported)
            self._failure.append(_reported(exc, "cannot encode the video"))
        finally:
            if audio is not None:
                audio.close()

    def close(self) -> None:
        if self._worker is None:
            raise EnlivenError("no frames were rendered, nothing to write")
        self._send(_END)
        while self._worker.is_alive():
            self._worker.join(_POLL_SECONDS)
            if self._heartbeat.stalled() and self._worker.is_alive():
                self._abandoned.set()
                raise EnlivenError(
                    f"the video encoder made no progress for {_STALL_SECONDS:.0f} s while finishing; giving up"
                )
        self._raise_failure()
        if not self._finished:  # it was told to give up (a stall found by an earlier write) and the caller went on
            raise EnlivenError("the video encoder stopped before the video was complete")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._worker is not None:
            # The caller's own error is the one to report: stop the encoder, wait a bounded time, never raise.
            self._abandoned.set()
            self._worker.join(_STOP_SECONDS)


class _Sink:
    """The output file as FFmpeg writes it through PyAV. A failed write (a full disk) is kept and raised by
    ``check`` on our side: raised inside PyAV's callback it would be printed as a dropped exception, and FFmpeg
    would go on."""

    def __init__(self, path: Path):
        self._file = open(path, "wb")  # noqa: SIM115 - closed by __exit__
        self._error: OSError | None = None

    def write(self, data) -> int:
        if self._error is None:
            try:
                return self._file.write(data)
            except OSError as exc:
                self._error = exc
        return len(data)  # the file is lost anyway; FFmpeg need not know before check() says so

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._file.close()  # flushes: a failure here is a write failure too
        except OSError as error:
            self._error = self._error or error
        if exc[0] is None:
            self.check()


AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}


class _AudioCopy:
    """Transcode the first audio stream of a file to AAC into an output container, cut to a duration.

    The writer calls ``keep_up`` as video frames are encoded (the track is encoded as far as the video goes, on
    the encoder's thread while it waits for frames, instead of all of it after the last frame) and ``run`` at
    the end, which cuts the track at the video's final length; the packets are the same as one pass over the
    track would give. Damaged packets are skipped and counted (``damaged_packets``), as ffmpeg does; a track
    where more than half of them fail ends with an EnlivenError."""

    def __init__(self, out, source: Path):
        self._out = out
        self._source = source
        self.damaged_packets = 0
        self._src = open_media(source, "audio")  # its failures as one line, and nothing left open
        self._in = self._src.streams.audio[0] if self._src.streams.audio else None
        if self._in is None:
            self._src.close()
            return
        try:
            ctx = self._in.codec_context
            # AAC takes these rates only; other tracks (damaged headers, odd recorders) are resampled to 48 kHz.
            self.rate = ctx.sample_rate if ctx.sample_rate in AAC_RATES else 48000
            layout = "stereo" if (ctx.channels or 1) > 1 else "mono"
            self._stream = out.add_stream("aac", rate=self.rate, layout=layout)
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        except BaseException:
            self._src.close()
            raise
        self._decoder: PacketDecoder | None = None  # made at the first ``keep_up`` or ``run``
        self._frames: Iterator | None = None
        self._chunks: deque = deque()  # resampled, not yet encoded: the next one goes past the video so far
        self._written = 0  # samples encoded

    def close(self) -> None:
        """Close the source (also when the copy never ran: the video failed first)."""
        self._src.close()

    def keep_up(self, duration: float, heartbeat: _Heartbeat | None = None) -> None:
        """Encode the track as far as ``duration`` seconds (the video written so far), no further."""
        if self._in is not None:
            self._guarded(duration, heartbeat, final=False)

    def run(self, duration: float, heartbeat: _Heartbeat | None = None) -> None:
        """Encode the rest of the track, cut at ``duration`` seconds (the video's length), and finish it."""
        if self._in is None:
            return
        with self._src:
            self._guarded(duration, heartbeat, final=True)

    def _guarded(self, duration: float, heartbeat: _Heartbeat | None, final: bool) -> None:
        """``_copy``, the media's failures as one EnlivenError line."""
        try:
            self._copy(duration, heartbeat, final)
        except EnlivenError:
            raise
        except (av.FFmpegError, OSError) as exc:  # a plain ValueError is a bug here (MEDIA_FAILURES); see _resampled
            raise EnlivenError(f"cannot copy the audio of {self._source}: {_one_line(exc)}") from exc

    def _copy(self, duration: float, heartbeat: _Heartbeat | None, final: bool) -> None:
        limit = int(round(duration * self.rate))
        if self._decoder is None:
            self._decoder = PacketDecoder(self._src, self._in, "audio", self._source, heartbeat)
            self._frames = self._decoder.frames()
        try:
            while self._written < limit:
                if not self._chunks:
                    frame = next(self._frames, None)  # None again and again once the track has ended
                    if frame is None:
                        break
                    frame.pts = None
                    self._chunks.extend(self._resampled(frame))
                    continue
                chunk = self._chunks[0]
                if self._written + chunk.samples > limit:
                    if not final:
                        return  # it reaches past the video so far: it waits for more frames, or the cut
                    chunk = self._head(chunk, limit - self._written)
                self._chunks.popleft()
                self._written += chunk.samples
                for packet in self._stream.encode(chunk):
                    self._out.mux(packet)
        finally:
            self.damaged_packets = self._decoder.damaged
        if not final:
            return
        self._decoder.warn()  # the copy stops at the video's length, perhaps before the end of the track
        for packet in self._stream.encode(None):
            self._out.mux(packet)

    def _resampled(self, frame) -> list:
        """``frame`` as AAC's frames; one EnlivenError if the track changes its sample format, layout or rate
        midway (a damaged packet can decode so), which PyAV's resampler refuses with a plain ValueError."""
        try:
            return self._resampler.resample(frame)
        except ValueError as exc:
            if isinstance(exc, av.FFmpegError):
                raise
            raise EnlivenError(f"cannot copy the audio of {self._source}: it changes midway ({exc})") from exc

    def _head(self, chunk, samples: int):
        """The first ``samples`` (at least one) samples of a planar float frame."""
        head = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk.to_ndarray()[:, :samples]), format="fltp", layout=chunk.layout.name
        )
        head.sample_rate = self.rate
        return head


def probe_duration_frames(path: str | os.PathLike) -> int:
    """Frames actually in a file (decodes it); used by tests and summaries."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
