"""How fast does the Edit tab's picture follow a slider? Library time per edit, against a same-run baseline.

    python benchmarks/edit_speed.py [--image PATH] [--positions 25] [--rounds 3]

The page's Edit tab prepares a picture once (faces found, engine prepared: ``enliven.app.page.prepare_still``)
and then, for every slider move, calls ``StillEdit.render`` (``Animation.still``: one aligned target, one mesh
render, one paste-back). This script times exactly that, sweeping each slider kind over --positions values
(smile, yaw, eyes, lip, gaze, all together), and prints the median and 90th percentile per edit.

Baseline, measured in the same run: one ordinary frame of ``enliven animate`` with a preset (``Animation.frames``,
the same engine at the same size), so the ratio says what a live edit costs beyond a plain frame; and the ratio to
the page's goal of well under a second per update. The browser's round trip (Gradio's queue, PNG encoding,
the page redrawing) comes on top: the browser test prints it (``pytest tests/app -s -k smile``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from enliven import api
from enliven.app.page import prepare_still
from enliven.io.images import read_image
from enliven.motion.align import Controls

GOAL_S = 1.0  # the "well under a second per update"


def sweeps(positions: int) -> dict[str, list[Controls]]:
    """Each slider kind swept across its range, as a user drags it."""
    ramp = np.linspace(-1.0, 1.0, positions)
    return {
        "smile": [Controls(smile=1.5 * v) for v in ramp],
        "yaw": [Controls(yaw=30 * v) for v in ramp],
        "eyes": [Controls(eyes_open=(0.4 * (v + 1), 0.4 * (v + 1))) for v in ramp],
        "lip": [Controls(lip_open=0.4 * (v + 1)) for v in ramp],
        "gaze": [Controls(gaze=(v, -v)) for v in ramp],
        "all": [Controls(smile=v, yaw=20 * v, pitch=10 * v, roll=10 * v, brows=v, wink=abs(v), gaze=(v, v))
                for v in ramp],
    }


def timed(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=api.bundled_portrait())
    parser.add_argument("--positions", type=int, default=25, help="slider positions per sweep")
    parser.add_argument("--rounds", type=int, default=3, help="sweeps of every slider, baseline between them")
    args = parser.parse_args()

    image = read_image(args.image)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        still = prepare_still(image, Path(folder))
        prepare_s = time.perf_counter() - started
        plain = api.prepare_animation(image, "preset:blink", str(args.image), progress=False)
        frames = plain.frames()
        next(frames)  # the first frame pays for start-up, as the first edit after loading does (not timed)
        still.render(Controls())

        edit_s: dict[str, list[float]] = {name: [] for name in sweeps(args.positions)}
        baseline_s: list[float] = []
        for _ in range(args.rounds):  # alternate, so a drifting machine load hits both alike
            for name, controls in sweeps(args.positions).items():
                edit_s[name] += [timed(still.render, c) for c in controls]
                baseline_s += [timed(next, frames) for _ in range(2)]

    every = [s for times in edit_s.values() for s in times]
    base = statistics.median(baseline_s)
    print(f"picture {image.shape[1]}×{image.shape[0]}, prepared once in {prepare_s * 1000:.0f} ms")
    print(f"{'slider':<8}{'edits':>7}{'median ms':>11}{'p90 ms':>9}")
    for name, times in edit_s.items():
        p90 = float(np.percentile(times, 90))
        print(f"{name:<8}{len(times):>7}{statistics.median(times) * 1000:>11.1f}{p90 * 1000:>9.1f}")
    median, p90 = statistics.median(every), float(np.percentile(every, 90))
    print(f"{'every':<8}{len(every):>7}{median * 1000:>11.1f}{p90 * 1000:>9.1f}")
    print(f"baseline: one plain animate frame, median {base * 1000:.1f} ms over {len(baseline_s)} frames")
    print(f"edit / plain frame: {median / base:.2f}×   goal ({GOAL_S:.0f} s) / edit p90: {GOAL_S / p90:.0f}×")


if __name__ == "__main__":
    sys.exit(main())
