"""Jobs per minute of `enliven batch` on Ray against the same jobs run one after another, in the same run.

    python benchmarks/batch_throughput.py [--jobs 8] [--rounds 1] [--num-cpus N] [--preset mouth]
        [--crop-size 512] [--address ray://HOST:10001]

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
import statistics
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
    parser.add_argument("--rounds", type=int, default=1, help="repeat both, alternating which goes first")
    args = parser.parse_args()

    from enliven import api
    from enliven.batch import BatchJob, BatchSettings, run_batch

    options = {"crop_size": args.crop_size, "fps": args.fps}
    print(f"{args.jobs} jobs: preset:{args.preset}, mesh engine, crop {args.crop_size}, {args.fps:g} fps; this "
          f"machine has {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="enliven-batch-bench-") as tmp:
        tmp = Path(tmp)
        sources = make_sources(tmp, args.jobs)
        jobs = [BatchJob(str(s), f"preset:{args.preset}", f"{s.stem}.mp4", options=options) for s in sources]
        per_minute = lambda seconds: len(jobs) / seconds * 60  # noqa: E731
        for round_ in range(args.rounds):
            # Alternate which goes first, so that a change in the machine's load falls on both alike.
            order = ("sequential", "batch") if round_ % 2 == 0 else ("batch", "sequential")
            took = {}
            for kind in order:
                folder = tmp / f"{kind}{round_}"
                folder.mkdir()
                if kind == "sequential":
                    started = time.perf_counter()
                    frames = {job.output: api.animate(job.source, job.driving, folder / job.output, progress=False,
                                                      **options).frames for job in jobs}
                    took[kind] = time.perf_counter() - started
                else:
                    finished = []
                    started = time.perf_counter()
                    settings = BatchSettings(address=args.address, num_cpus=args.num_cpus)
                    result = run_batch(jobs, folder, settings, progress=False,
                                       on_job=lambda record, ends=finished: ends.append(time.perf_counter()))
                    took[kind] = time.perf_counter() - started
                    assert result.counts.get("done") == len(jobs), result.summary()
                    got = {r.job.output: r.frames for r in result.records}
            assert got == frames, (got, frames)
            # Once every worker is up (each has finished one job: they start together, so that is the W-th job's
            # end), what thousands of jobs would see; against the baseline's own mean time per job.
            workers = result.workers
            # Measured only over at least two jobs a worker: fewer gives a span too short to mean anything.
            counted = len(jobs) - workers
            steady = (finished[-1] - finished[workers - 1]) / counted if counted >= 2 * workers else None
            sequential, batch = took["sequential"], took["batch"]
            ratios.append((sequential / batch, sequential / len(jobs) / steady if steady else float("nan")))
            print(f"round {round_ + 1} ({' then '.join(order)}), {sum(frames.values())} frames in all:")
            print(f"  one after another (api.animate in one process): {sequential:7.1f} s  "
                  f"{per_minute(sequential):6.1f} jobs/min")
            print(f"  enliven batch ({workers} Ray workers{', ' + args.address if args.address else ''}, start-up "
                  f"included): {batch:7.1f} s  {per_minute(batch):6.1f} jobs/min")
            if steady:
                print(f"  enliven batch once its workers are up (job {workers}'s end to the last's): "
                      f"{60 / steady:6.1f} jobs/min")
            print(f"  ratio: {ratios[-1][0]:.2f}x with start-up, {ratios[-1][1]:.2f}x once up")
    if len(ratios) > 1:
        print(f"median ratio over {len(ratios)} rounds: {statistics.median(r[0] for r in ratios):.2f}x with start-up, "
              f"{statistics.median(r[1] for r in ratios):.2f}x once up")

if __name__ == "__main__":
    main()
