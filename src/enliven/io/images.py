"""Read and write still images as RGB uint8 arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from enliven.errors import EnlivenError
from enliven.io.files import atomic_output, require_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 array (H, W, 3), with EXIF orientation applied; a clear error for anything unreadable."""
    path = require_file(path)
    try:
        with Image.open(path) as im:
            from PIL import ImageOps

            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise EnlivenError(f"cannot read image {path}: {exc}") from None


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format=Image.registered_extensions().get(Path(path).suffix.lower(), "PNG"))
