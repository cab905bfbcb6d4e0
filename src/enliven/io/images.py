"""Read and write still images as RGB uint8 arrays."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from enliven.errors import EnlivenError
from enliven.io.files import atomic_output, require_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}

DEFAULT_MAX_PIXELS = 120_000_000
"""Largest picture (width × height) read unless raised with ``pixel_limit`` / ``--max-pixels``. It is above every
common camera (a 102-megapixel medium-format frame included) and keeps the decoded copies of one picture (RGB,
then its EXIF-turned copy) near 1 GB, what a laptop can spare. A file whose header claims more is refused before
anything is decoded: a few bytes of PNG can otherwise claim 60000 × 60000 pixels and ask for 10 GB."""

# Everything Pillow raises on a damaged or hostile file, as reported by its own plugins: truncated data
# (OSError), broken chunks (SyntaxError, EOFError), impossible header values (ValueError), and the decompression
# bomb guard (its error, and its warning, which we turn into an error so that it cannot be missed).
PILLOW_READ_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

_max_pixels: contextvars.ContextVar[int] = contextvars.ContextVar("enliven_max_pixels", default=DEFAULT_MAX_PIXELS)
_log = logging.getLogger(__name__)
_pillow_guard = threading.Lock()  # held while Pillow's process-wide limit is ours (see _pillow_guard_at)


def max_pixels() -> int:
    """The pixel limit in force (``DEFAULT_MAX_PIXELS`` unless inside ``pixel_limit``)."""
    return _max_pixels.get()


@contextlib.contextmanager
def pixel_limit(limit: int) -> Iterator[None]:
    """Read pictures of up to ``limit`` pixels (width × height) inside this block."""
    if limit <= 0:
        raise EnlivenError(f"the pixel limit must be a positive number, got {limit}")
    token = _max_pixels.set(int(limit))
    try:
        yield
    finally:
        _max_pixels.reset(token)


def check_pixel_count(width: int, height: int, what: str) -> None:
    """A clear error if a ``width`` × ``height`` picture is over the pixel limit (for ``what``, e.g. a path)."""
    limit = max_pixels()
    if width * height > limit:
        raise EnlivenError(
            f"{what} is {width}×{height} = {width * height:,} pixels, over the limit of {limit:,} "
            "(raise it with --max-pixels N if the file is genuine)"
        )


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


@contextlib.contextmanager
def _pillow_guard_at(limit: int | None) -> Iterator[list[warnings.WarningMessage]]:
    """Pillow's decompression-bomb guard at ``limit`` (None: off), its warning turned into an error. Its limit is
    one process-wide number, so reads that change it take turns. Pillow's other warnings (a damaged TIFF tag's
    "Metadata Warning") are kept in the list it yields rather than printed: a read that fails says why in its one
    error line, and one that works reports them through ``_said_by_pillow``."""
    with _pillow_guard, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")  # each read's own, not only the first of the process
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        pillow_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield said
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit


def _said_by_pillow(said: list[warnings.WarningMessage], path: Path) -> None:
    """Pillow's warnings of a read that worked, as the library's warnings (printed by the CLI when the run works);
    a warning from elsewhere (another thread's, caught by the process-wide recording) goes on as it came."""
    for caught in said:
        if f"{os.sep}PIL{os.sep}" in caught.filename:
            _log.warning(f"enliven: image {path}: {caught.message}")
        else:
            warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 array (H, W, 3), with EXIF orientation applied; a clear error for anything unreadable, and for
    a picture over the pixel limit (checked on the header's size, before decoding)."""
    path = require_file(path)
    limit = max_pixels()
    try:
        # Pillow reads only the header here; its guard is off so that ours, next, can name the size it refuses.
        with _pillow_guard_at(None) as said_opening:
            image = Image.open(path)
        # Decoding stays guarded at our limit: some formats (GIF, TIFF tiles, MPO) check sizes as they decode.
        with image, _pillow_guard_at(limit) as said_decoding:
            check_pixel_count(*image.size, f"image {path}")
            picture = _as_rgb8(ImageOps.exif_transpose(image))
        _said_by_pillow(said_opening + said_decoding, path)
        return picture
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise EnlivenError(
            f"image {path} holds a picture over the limit of {limit:,} pixels (raise it with --max-pixels N if the "
            "file is genuine)"
        ) from None
    except PILLOW_READ_ERRORS as exc:
        raise EnlivenError(f"cannot read image {path}: {exc}") from None


def _as_rgb8(image: Image.Image) -> np.ndarray:
    """RGB uint8 of any Pillow mode. Pillow's own convert("RGB") clips 16-bit and 32-bit greyscale at 255 (a
    16-bit PNG turns white) and float pictures likewise: those are scaled into 8 bits here first."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image.convert("I") if image.mode != "I" else image, np.float64)
        grey = values / 257.0 if values.max(initial=0) > 255 else values  # 16-bit data (a 32-bit I is rare)
        image = Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        grey = values * 255.0 if values.max(initial=0) <= 1.0 else values  # [0, 1] floats, else 8-bit scale
        image = Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8), "L")
    return np.asarray(image.convert("RGB"))


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format=Image.registered_extensions().get(Path(path).suffix.lower(), "PNG"))
