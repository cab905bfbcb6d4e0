"""Fingerprints of what the engines render on fixed inputs, to show a refactor changed nothing.

    python benchmarks/engine_outputs.py [--frames 60]

Renders the bundled portrait driven by a fixed clip made here without any engine (the portrait itself swaying,
turning and zooming by plain affine warps, with black frames in the middle where the face is lost) with the mesh
engine and with the keypoint engine on tiny random LivePortrait weights (seed 0, made here), and prints a SHA-256
of each engine's frames. Run it on two commits (e.g. from two `git worktree`s with PYTHONPATH=WORKTREE/src): equal lines
mean bit-identical output.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path


def write_driver(path: Path, picture, frames: int) -> None:
    """The picture swaying (±6 % of its width), turning (±8°) and zooming (0.93–1.07) along smooth curves, frames
    40–44 black; lossless, so every run decodes the same pixels."""
    import cv2
    import numpy as np

    from enliven.io.video import VideoWriter

    h, w = picture.shape[:2]
    with VideoWriter(path, 25, crf=0) as writer:
        for t in range(frames):
            if 40 <= t < 45:
                writer.write(np.zeros_like(picture))
                continue
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 8 * np.sin(t / 7), 1 + 0.07 * np.sin(t / 11))
            m[0, 2] += 0.06 * w * np.sin(t / 5)
            writer.write(cv2.warpAffine(picture, m, (w, h), borderMode=cv2.BORDER_REPLICATE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames rendered per engine (default 60)")
    args = parser.parse_args()
    import torch

    from enliven import api
    from enliven.engines.keypoint import build_modules, save_official, tiny_config
    from enliven.io.images import read_image

    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "driver.mp4"
        write_driver(driver, read_image(api.bundled_portrait()), args.frames)
        torch.manual_seed(0)
        save_official(build_modules(tiny_config()), Path(tmp) / "lp" / "liveportrait", config=tiny_config())
        portrait = read_image(api.bundled_portrait())
        for engine, options in (("mesh", {}), ("keypoint", {"weights": str(Path(tmp) / "lp")})):
            job = api.prepare_animation(portrait, driver, engine=engine, progress=False, **options)
            digest = hashlib.sha256()
            count = 0
            for frame in job.frames():
                digest.update(frame.tobytes())
                count += 1
                if count == args.frames:
                    break
            print(f"{engine:<9} {count} frames  sha256 {digest.hexdigest()}")


if __name__ == "__main__":
    main()
