"""Jobs per minute of `enliven batch` on Ray against the same jobs run one after another, in the same run.

    python benchmarks/batch_throughput.py [--jobs 8] [--num-cpus N] [--preset mouth] [--crop-size 512]
        [--address ray://HOST:10001]

The jobs: the bundled portrait, each copy mirrored or shifted a little so that no two sources are the same file,
animated by a built-in preset with the mesh engine. The baseline calls ``api.animate`` for each job in turn in this
process (no start-up per job: the most favourable baseline); the batch runs them through ``run_batch`` on a Ray
started here with ``--num-cpus`` cores (default: all) or on the cluster at ``--address``, Ray's own start-up
included. Both write every output; the batch's are checked to have the baseline's frame counts. Prints jobs/min of
each and their ratio, and the batch's rate once its workers are up (from the end of the W-th job, W workers, to the
last's: what a batch of thousands sees).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def make_sources(folder: Path, count: int) -> list[Path]:
    import numpy as np

    from enliven import api
    from enliven.io.images import read_image, write_image

    picture = read_image(api.bundled_portrait())
    paths = []
    for i in range(count):
        shifted = np.roll(picture, 4 * (i // 2), axis=1)
        write_image(folder / f"portrait{i:03d}.png", shifted[:, ::-1] if i % 2 else shifted)
        paths.append(folder / f"portrait{i:03d}.png")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--num-cpus", type=int, default=None, help="cores of the Ray started here (default: all)")
    parser.add_argument("--address", default=None, help="a Ray cluster instead of one started here")
    parser.add_argument("--preset", default="mouth")
    parser.add_argument("--crop-size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=25)
    args = parser.parse_args()

    from enliven import api
    from enliven.batch import BatchJob, BatchSettings, run_batch

    options = {"crop_size": args.crop_size, "fps": args.fps}
    with tempfile.TemporaryDirectory(prefix="enliven-batch-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "sequential").mkdir()
        sources = make_sources(tmp, args.jobs)
        jobs = [BatchJob(str(s), f"preset:{args.preset}", f"{s.stem}.mp4", options=options) for s in sources]

        started = time.perf_counter()
        frames = {}
        for job in jobs:
            result = api.animate(job.source, job.driving, tmp / "sequential" / job.output, progress=False, **options)
            frames[job.output] = result.frames
        sequential = time.perf_counter() - started

        settings = BatchSettings(address=args.address, num_cpus=args.num_cpus)
        finished = []
        started = time.perf_counter()
        result = run_batch(jobs, tmp / "batch", settings, progress=False,
                           on_job=lambda record: finished.append(time.perf_counter()))
        batch = time.perf_counter() - started
        assert result.counts.get("done") == len(jobs), result.summary()
        got = {r.job.output: r.frames for r in result.records}
        assert got == frames, (got, frames)

    per_minute = lambda seconds: len(jobs) / seconds * 60  # noqa: E731
    print(f"{len(jobs)} jobs: preset:{args.preset}, mesh engine, crop {args.crop_size}, {args.fps:g} fps, "
          f"{sum(frames.values())} frames in all; this machine has {os.cpu_count()} cores")
    print(f"one after another (api.animate in one process): {sequential:7.1f} s  "
          f"{per_minute(sequential):6.1f} jobs/min")
    print(f"enliven batch ({result.workers} Ray workers{', ' + args.address if args.address else ''}, start-up "
          f"included): {batch:7.1f} s  {per_minute(batch):6.1f} jobs/min")
    # Once every worker is up (each has finished one job: they start together, so that is the W-th job's end), what
    # thousands of jobs would see; against the baseline's own mean time per job.
    workers = result.workers
    steady = (finished[-1] - finished[workers - 1]) / (len(jobs) - workers) if len(jobs) > workers else batch
    print(f"enliven batch once its workers are up (job {workers}'s end to the last's): {60 / steady:6.1f} jobs/min")
    print(f"ratio: {sequential / batch:.2f}x with start-up, {sequential / len(jobs) / steady:.2f}x once up")


if __name__ == "__main__":
    main()
