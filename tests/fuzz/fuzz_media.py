"""The fuzz suite's raw material: small valid files of every format enliven reads, and ways to damage them.

Every seed is built here from the bundled public-domain portrait (no file is committed): pictures in each format
and pixel layout, short driving clips in each container, speech-like audio, a motion template. Damage is described
by plain values (``Damage``) that Hypothesis draws, so a failing case prints as something one can rebuild by hand.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

FACE_SIZE = 160  # source pictures: MediaPipe finds the portrait's face reliably from ~100 px up
CLIP_SIZE = 128  # driving clips (even, for 4:2:0 video)
CLIP_FRAMES = 6
CLIP_FPS = 25
AUDIO_RATE = 16000

IMAGE_FORMATS = ("png", "jpg", "webp", "gif", "bmp", "tiff")
VIDEO_FORMATS = ("mp4", "mov", "mkv", "webm", "avi")
AUDIO_FORMATS = ("wav", "mp3", "flac")
TEMPLATE_FORMATS = ("npz",)
ALL_FORMATS = IMAGE_FORMATS + VIDEO_FORMATS + AUDIO_FORMATS + TEMPLATE_FORMATS


def portrait(size: int) -> np.ndarray:
    """The bundled portrait (RGB uint8), ``size`` pixels square."""
    from enliven.api import bundled_portrait

    return np.asarray(Image.open(bundled_portrait()).convert("RGB").resize((size, size), Image.LANCZOS))


def clip_frames(size: int = CLIP_SIZE, count: int = CLIP_FRAMES) -> list[np.ndarray]:
    """A short driving clip: the portrait drifting a pixel a frame and nodding a little (a face MediaPipe sees)."""
    face = portrait(size)
    frames = []
    for i in range(count):
        angle = 3.0 * math.sin(2 * math.pi * i / max(count, 2))
        turn = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        turn[:, 2] += (i % 3, 0)
        frames.append(cv2.warpAffine(face, turn, (size, size), borderMode=cv2.BORDER_REFLECT))
    return frames


def speech_like(seconds: float, rate: int = AUDIO_RATE, channels: int = 1) -> np.ndarray:
    """Noise under a 4 Hz syllable envelope: float32 (channels, samples) in [-1, 1]. Loud and quiet stretches
    are what the audio driver turns into mouth motion."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    noise = np.random.default_rng(7).standard_normal((channels, t.size))
    return (0.3 * envelope * noise).astype(np.float32).clip(-1, 1)


# --- writers -------------------------------------------------------------------------------------------------

VIDEO_CODECS = {  # container → (video codec, pixel format, audio codec or None, audio sample format)
    "mp4": ("libx264", "yuv420p", "aac", "fltp"),
    "mov": ("mpeg4", "yuv420p", "aac", "fltp"),
    "mkv": ("ffv1", "yuv420p", "flac", "s16"),
    "webm": ("libvpx", "yuv420p", "libopus", "flt"),
    "avi": ("mjpeg", "yuvj420p", "libmp3lame", "fltp"),
}


def write_video(
    path: Path,
    frames: list[np.ndarray],
    container_format: str | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: Fraction | int = CLIP_FPS,
    pts: list[int] | None = None,
    audio: tuple[str, str, int, int] | None = None,
) -> Path:
    """A clip of ``frames``; ``pts`` (in 1/1000 s) gives each frame its own time (variable frame rate);
    ``audio`` = (codec, sample format, rate, channels) adds a speech-like track as long as the pictures."""
    with av.open(str(path), "w", format=container_format) as out:
        if frames:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
            if pts is not None:
                stream.time_base = Fraction(1, 1000)
                stream.codec_context.time_base = Fraction(1, 1000)
        sound = None
        if audio is not None:
            acodec, sample_format, rate, channels = audio
            sound = out.add_stream(acodec, rate=rate, layout=_layout(channels))
        for i, picture in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        if frames:
            for packet in stream.encode():
                out.mux(packet)
        if sound is not None:
            seconds = len(frames) / float(fps) if frames else 0.5
            _encode_audio(out, sound, speech_like(seconds, rate, channels), sample_format, rate, channels)
    return path


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[channels]


def _encode_audio(out, sound, samples: np.ndarray, sample_format: str, rate: int, channels: int) -> None:
    block = sound.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, samples.shape[1], block):
        chunk = samples[:, start : start + block]
        if sample_format == "s16":
            data = (chunk.T * 32767).astype(np.int16).reshape(1, -1)
        elif sample_format == "flt":
            data = chunk.T.reshape(1, -1).copy()
        else:  # planar float
            data = np.ascontiguousarray(chunk)
        frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout=_layout(channels))
        frame.sample_rate, frame.pts = rate, pts
        pts += chunk.shape[1]
        for packet in sound.encode(frame):
            out.mux(packet)
    for packet in sound.encode(None):
        out.mux(packet)


def write_audio(path: Path, samples: np.ndarray, rate: int = AUDIO_RATE, codec: str | None = None) -> Path:
    """An audio file of float32 ``samples`` (channels, n); the codec follows the suffix unless given."""
    suffix = path.suffix.lower().lstrip(".")
    codec = codec or {"wav": "pcm_s16le", "mp3": "libmp3lame", "flac": "flac"}[suffix]
    sample_format = {"pcm_s16le": "s16", "flac": "s16", "libmp3lame": "fltp"}[codec]
    channels = samples.shape[0]
    with av.open(str(path), "w") as out:
        sound = out.add_stream(codec, rate=rate, layout=_layout(channels))
        _encode_audio(out, sound, samples, sample_format, rate, channels)
    return path


def write_picture(path: Path, image: np.ndarray | Image.Image, **save) -> Path:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    fmt = {"jpg": "JPEG", "tif": "TIFF"}.get(path.suffix.lower().lstrip("."), None)
    picture.save(path, format=fmt, **save)
    return path


def write_animated(path: Path, frames: list[np.ndarray]) -> Path:
    """An animated GIF or WebP (the first picture shows the face)."""
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=40, loop=0)
    return path


# --- the seed set ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeds:
    """Valid inputs built once per test session, one per format, plus the plain inputs cases combine them with."""

    folder: Path

    def __getitem__(self, name: str) -> Path:
        return self.folder / name

    def of_format(self, fmt: str) -> Path:
        """The valid seed file of format ``fmt`` (see ALL_FORMATS)."""
        return self.folder / f"seed.{fmt}"


def build_seeds(folder: Path) -> Seeds:
    """Write every seed into ``folder`` (a few hundred kB in all, ~2 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    face = portrait(FACE_SIZE)
    frames = clip_frames()
    write_picture(folder / "source.png", face)  # the source picture of cases that vary something else
    for fmt in IMAGE_FORMATS:
        write_picture(folder / f"seed.{fmt}", face)
    for fmt in VIDEO_FORMATS:
        codec, pix_fmt, acodec, sample_format = VIDEO_CODECS[fmt]
        rate = 48000 if acodec == "libopus" else 44100 if acodec == "libmp3lame" else AUDIO_RATE
        write_video(folder / f"seed.{fmt}", frames, None, codec, pix_fmt, audio=(acodec, sample_format, rate, 1))
    for fmt in AUDIO_FORMATS:
        rate = 44100 if fmt == "mp3" else AUDIO_RATE
        write_audio(folder / f"seed.{fmt}", speech_like(0.6, rate), rate)
    _write_template(folder / "seed.npz", folder / "seed.mp4")
    return Seeds(folder)


def _write_template(path: Path, clip: Path) -> None:
    """A valid motion template, made the way a user makes one (``enliven motion extract``)."""
    from enliven.api import extract_motion

    extract_motion(clip, path, progress=False)


# --- damage ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """What to do to a file's bytes. ``kind``: intact, truncate (keep ``where`` of it), flip (``bits``: positions
    as fractions of the length with a bit number), burst (``length`` bytes of ``fill`` from ``where``), head
    (flip ``bits`` within the first 64 bytes: the header), zero (an empty file)."""

    kind: str
    where: float = 0.0
    length: int = 0
    fill: int = 0
    bits: tuple[tuple[float, int], ...] = ()

    def apply(self, data: bytes) -> bytes:
        n = len(data)
        if self.kind == "intact":
            return data
        if self.kind == "zero":
            return b""
        if self.kind == "truncate":
            return data[: max(1, min(n - 1, int(n * self.where)))]
        out = bytearray(data)
        if self.kind == "burst":
            start = min(n - 1, int(n * self.where))
            out[start : start + self.length] = bytes([self.fill]) * len(out[start : start + self.length])
        elif self.kind in ("flip", "head"):
            span = min(n, 64) if self.kind == "head" else n
            for where, bit in self.bits:
                out[min(span - 1, int(span * where))] ^= 1 << bit
        else:
            raise ValueError(f"unknown damage {self.kind}")
        return bytes(out)


def damaged_copy(source: Path, target: Path, damage: Damage) -> Path:
    target.write_bytes(damage.apply(source.read_bytes()))
    return target


# --- odd but valid pictures -----------------------------------------------------------------------------------

PICTURE_VARIANTS = (
    "png16-grey", "png16-rgb", "cmyk-jpeg", "grey", "palette", "rgba", "la", "exif-rotated", "animated-gif",
    "animated-webp", "one-pixel", "odd-size", "thin", "tiny-face", "huge-claim-png", "huge-claim-jpeg",
    "huge-claim-gif", "huge-claim-bmp", "huge-claim-webp", "progressive-jpeg", "interlaced-png", "float-tiff",
)


def odd_picture(variant: str, path_stem: Path, orientation: int = 6) -> Path:
    """A picture in an unusual layout (``PICTURE_VARIANTS``); returns its path (the suffix follows the format)."""
    face = portrait(FACE_SIZE)
    if variant == "png16-grey":
        grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        return write_picture(path_stem.with_suffix(".png"), Image.fromarray(grey))  # mode I;16
    if variant == "png16-rgb":
        path = path_stem.with_suffix(".png")
        cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
        return path
    if variant == "cmyk-jpeg":
        return write_picture(path_stem.with_suffix(".jpg"), Image.fromarray(face).convert("CMYK"))
    if variant == "grey":
        return write_picture(path_stem.with_suffix(".png"), Image.fromarray(face).convert("L"))
    if variant == "palette":
        return write_picture(path_stem.with_suffix(".png"), Image.fromarray(face).convert("P"))
    if variant == "rgba":  # a transparent border around the face
        rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
        rgba[:12, :, 3] = rgba[:, :12, 3] = 0
        return write_picture(path_stem.with_suffix(".png"), Image.fromarray(rgba, mode="RGBA"))
    if variant == "la":
        return write_picture(path_stem.with_suffix(".png"), Image.fromarray(face).convert("LA"))
    if variant == "exif-rotated":  # stored turned, with the EXIF tag that turns it back upright
        undo = {2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM, 5: Image.TRANSPOSE,
                6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}
        picture = Image.fromarray(face)
        stored = picture.transpose(undo[orientation]) if orientation in undo else picture
        exif = Image.Exif()
        exif[0x0112] = orientation
        return write_picture(path_stem.with_suffix(".jpg"), stored, exif=exif.tobytes())
    if variant in ("animated-gif", "animated-webp"):
        suffix = ".gif" if variant == "animated-gif" else ".webp"
        return write_animated(path_stem.with_suffix(suffix), [face, face[:, ::-1].copy(), face])
    if variant == "one-pixel":
        return write_picture(path_stem.with_suffix(".png"), face[:1, :1].copy())
    if variant == "odd-size":
        return write_picture(path_stem.with_suffix(".png"), cv2.resize(face, (157, 211)))
    if variant == "thin":
        return write_picture(path_stem.with_suffix(".png"), cv2.resize(face, (3, 1001)))
    if variant == "tiny-face":  # the face 20 px wide in a large empty frame
        canvas = np.full((600, 800, 3), 128, np.uint8)
        canvas[300:340, 400:440] = cv2.resize(face, (40, 40))
        return write_picture(path_stem.with_suffix(".jpg"), canvas)
    if variant.startswith("huge-claim-"):
        return huge_claim(variant.removeprefix("huge-claim-"), path_stem)
    if variant == "progressive-jpeg":
        return write_picture(path_stem.with_suffix(".jpg"), face, progressive=True)
    if variant == "interlaced-png":
        path = path_stem.with_suffix(".png")
        cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))  # OpenCV cannot interlace: a plain PNG
        return path
    if variant == "float-tiff":
        return write_picture(path_stem.with_suffix(".tiff"), Image.fromarray(face[..., 0].astype(np.float32)))
    raise ValueError(variant)


def huge_claim(fmt: str, path_stem: Path, side: int = 60000) -> Path:
    """A small file whose header claims ``side`` × ``side`` pixels (a decompression bomb's first bytes)."""
    small = portrait(16)
    if fmt == "png":
        data = bytearray(_encoded(small, "PNG"))
        # IHDR is the first chunk: length(4) type(4) width(4) height(4) ...; its CRC covers type + data.
        data[16:24] = side.to_bytes(4, "big") * 2
        crc = zipfile.crc32(bytes(data[12:29])) & 0xFFFFFFFF
        data[29:33] = crc.to_bytes(4, "big")
        path = path_stem.with_suffix(".png")
    elif fmt == "jpeg":
        data = bytearray(_encoded(small, "JPEG"))
        sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        data[sof + 5 : sof + 9] = min(side, 65535).to_bytes(2, "big") * 2  # height, width
        path = path_stem.with_suffix(".jpg")
    elif fmt == "gif":
        data = bytearray(_encoded(small, "GIF"))
        data[6:10] = min(side, 65535).to_bytes(2, "little") * 2  # logical screen width, height
        path = path_stem.with_suffix(".gif")
    elif fmt == "bmp":
        data = bytearray(_encoded(small, "BMP"))
        data[18:26] = side.to_bytes(4, "little") * 2
        path = path_stem.with_suffix(".bmp")
    elif fmt == "webp":
        data = bytearray(_encoded(small, "WEBP", lossless=True))
        # VP8L: signature byte 0x2f, then 14 bits width-1 and 14 bits height-1 (16384 at most).
        bits = (16383) | (16383 << 14) | (int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1))
        data[21:25] = bits.to_bytes(4, "little")
        path = path_stem.with_suffix(".webp")
    else:
        raise ValueError(fmt)
    path.write_bytes(bytes(data))
    return path


def _encoded(image: np.ndarray, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **save)
    return buffer.getvalue()


# --- odd but valid streams ------------------------------------------------------------------------------------

STREAM_VARIANTS = (
    "audio-only-mp4", "audio-only-mkv", "empty-wav", "eight-channel-wav", "eight-channel-flac", "rate-1000",
    "rate-1", "variable-rate", "one-frame", "odd-size-video", "one-pixel-video", "wav-named-mp4",
    "mono-8khz-wav", "long-silence-wav", "rate-1-per-1001",
)


def odd_stream(variant: str, path_stem: Path) -> Path:
    """A media file with an unusual stream layout (``STREAM_VARIANTS``)."""
    frames = clip_frames()
    if variant == "audio-only-mp4":
        return write_video(path_stem.with_suffix(".mp4"), [], audio=("aac", "fltp", AUDIO_RATE, 1))
    if variant == "audio-only-mkv":
        return write_video(path_stem.with_suffix(".mkv"), [], audio=("flac", "s16", AUDIO_RATE, 1))
    if variant == "empty-wav":  # a valid header and no samples
        path = path_stem.with_suffix(".wav")
        import wave

        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(AUDIO_RATE)
        return path
    if variant == "eight-channel-wav":
        return write_audio(path_stem.with_suffix(".wav"), speech_like(0.5, channels=8))
    if variant == "eight-channel-flac":
        return write_audio(path_stem.with_suffix(".flac"), speech_like(0.5, channels=8))
    if variant == "mono-8khz-wav":
        return write_audio(path_stem.with_suffix(".wav"), speech_like(0.5, 8000), rate=8000)
    if variant == "long-silence-wav":
        return write_audio(path_stem.with_suffix(".wav"), np.zeros((1, AUDIO_RATE * 2), np.float32))
    if variant == "rate-1000":
        return write_video(path_stem.with_suffix(".mp4"), frames, fps=1000)
    if variant == "rate-1":
        return write_video(path_stem.with_suffix(".mp4"), frames[:3], fps=1)
    if variant == "rate-1-per-1001":
        return write_video(path_stem.with_suffix(".mkv"), frames[:2], codec="ffv1", fps=Fraction(1, 1001))
    if variant == "variable-rate":  # frames 1 ms to 700 ms apart
        pts = [0, 1, 40, 740, 760, 1500][: len(frames)]
        return write_video(path_stem.with_suffix(".mkv"), frames, codec="ffv1", pts=pts)
    if variant == "one-frame":
        return write_video(path_stem.with_suffix(".mp4"), frames[:1])
    if variant == "odd-size-video":
        odd = [cv2.resize(f, (127, 97)) for f in frames]
        return write_video(path_stem.with_suffix(".mkv"), odd, codec="ffv1", pix_fmt="yuv444p")
    if variant == "one-pixel-video":
        return write_video(path_stem.with_suffix(".mkv"), [f[:1, :1].copy() for f in frames], codec="ffv1",
                           pix_fmt="yuv444p")
    if variant == "wav-named-mp4":  # a container with one audio stream, named as a video
        path = path_stem.with_suffix(".mp4")
        path.write_bytes(write_audio(path_stem.with_suffix(".wav"), speech_like(0.5)).read_bytes())
        path.with_suffix(".wav").unlink()
        return path
    raise ValueError(variant)


# --- odd motion templates -------------------------------------------------------------------------------------

TEMPLATE_VARIANTS = (
    "nan", "inf", "wrong-shape", "transposed", "huge-claim", "object-array", "missing-key", "extra-key",
    "zero-frames", "fps-zero", "fps-nan", "fps-huge", "wrong-dtype", "scalar-shape", "one-frame", "string-array",
    "unknown-schema", "not-a-zip", "nested-zip", "wrong-format-name", "huge-scale", "mismatched-lengths",
)


def odd_template(variant: str, seed: Path, path: Path, where: float = 0.5) -> Path:
    """A copy of the valid template ``seed`` changed as ``variant`` says (``where``: which element, 0..1)."""
    with np.load(seed, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    frames = arrays["shape"].shape[0]
    pick = min(frames - 1, int(where * frames))
    if variant == "nan":
        arrays["shape"] = arrays["shape"].copy()
        arrays["shape"][pick, pick % 478] = np.nan
    elif variant == "inf":
        arrays["rotation"] = arrays["rotation"].copy()
        arrays["rotation"][pick, 0, 0] = np.inf
    elif variant == "wrong-shape":
        arrays["shape"] = arrays["shape"][:, :100]
    elif variant == "transposed":
        arrays["shape"] = np.ascontiguousarray(np.swapaxes(arrays["shape"], 1, 2))
    elif variant == "huge-claim":
        return _npz_with_huge_claim(arrays, path)
    elif variant == "object-array":  # a pickle inside: must be refused without being unpickled
        arrays["shape"] = np.array([_Sentinel()] * frames, dtype=object)
        _save_npz(path, arrays)  # numpy pickles object arrays when saving
        return path
    elif variant == "missing-key":
        del arrays[sorted(arrays)[pick % len(arrays)]]
    elif variant == "extra-key":
        arrays["surprise"] = np.zeros(3)
    elif variant == "zero-frames":
        arrays = {k: (v[:0] if v.ndim and v.shape[0] == frames else v) for k, v in arrays.items()}
    elif variant == "fps-zero":
        arrays["fps"] = np.float64(0)
    elif variant == "fps-nan":
        arrays["fps"] = np.float64(np.nan)
    elif variant == "fps-huge":
        arrays["fps"] = np.float64(1e12)
    elif variant == "wrong-dtype":
        arrays["shape"] = arrays["shape"].astype(np.complex64)
    elif variant == "scalar-shape":
        arrays["shape"] = np.float32(1.0)
    elif variant == "one-frame":
        arrays = {k: (v[:1] if v.ndim and v.shape[0] == frames else v) for k, v in arrays.items()}
    elif variant == "string-array":
        arrays["scale"] = np.array(["big"] * frames)
    elif variant == "unknown-schema":
        arrays["schema_version"] = np.int32(99)
    elif variant == "not-a-zip":
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
        return path
    elif variant == "nested-zip":  # a zip holding a zip, no arrays
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as z:
            z.writestr("a.npy", b"\x93NUMPY")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("inner.zip", inner.getvalue())
        return path
    elif variant == "wrong-format-name":
        arrays["format"] = np.array("something-else")
    elif variant == "huge-scale":
        arrays["scale"] = np.full_like(arrays["scale"], 1e30)
    elif variant == "mismatched-lengths":
        arrays["rotation"] = arrays["rotation"][: max(1, frames // 2)]
    else:
        raise ValueError(variant)
    _save_npz(path, arrays)
    return path


class _Sentinel:
    """Unpickling this would leave a mark: the suite checks that no template read ever does."""

    def __reduce__(self):
        return (Path("/tmp/enliven-fuzz-unpickled").touch, ())


def _save_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _npz_with_huge_claim(arrays: dict, path: Path) -> Path:
    """The template with its ``shape`` array's header claiming 10¹¹ frames (a few bytes of data behind it)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, arrays["shape"])
    raw = buffer.getvalue()
    header_end = raw.index(b"\n") + 1
    header = raw[:header_end].decode("latin1")
    claimed = header.replace(f"({arrays['shape'].shape[0]},", "(100000000000,", 1)
    claimed = claimed[: header_end - 1].ljust(header_end - 1) + "\n" if len(claimed) <= header_end else claimed
    with zipfile.ZipFile(path, "w") as z:
        for key, value in arrays.items():
            if key == "shape":
                z.writestr("shape.npy", claimed.encode("latin1") + raw[header_end:])
            else:
                item = io.BytesIO()
                np.lib.format.write_array(item, np.asanyarray(value))
                z.writestr(f"{key}.npy", item.getvalue())
    return path
