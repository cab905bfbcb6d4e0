"""Per-module milliseconds per driving frame of the keypoint (LivePortrait) engine: plain vs optimised.

    python benchmarks/keypoint_speed.py [--weights DIR] [--frames 3] [--rounds 3] [--threads N] [--onnx]

Three ways of running the same networks on the same inputs, each in a fresh process:
(a) baseline: the official networks run eagerly per frame (M on the driving crop, stitching, W, G),
    as LivePortrait's own loop does;
(b) optimised: what the engine runs on a CPU, ``accelerate.optimise_for_cpu`` (spectral norm and
    BatchNorm folded; decoder and warping module in fewer multiplications: Winograd, sub-pixel, FFT
    and col2im convolutions), with the source-side warping work cached, under ``torch.inference_mode``,
    and freed memory kept for reuse (``enliven.engines.cpu_memory``);
(c) plain, memory kept: (a) with freed memory kept, to show how much of the speed-up is the allocator's.
A shared machine's speed drifts by tens of percent over minutes, so the three alternate, round after round
(a b c a b c ...), and each round's speed-up compares runs made side by side: the script prints the median
frame's ms per module (median over rounds), the spread of the speed-ups over rounds (min / median / max), the
peak resident memory of each process while it warps and decodes (weights included), and how much memory each
frame page-faults in. Then, in this process: the largest output difference between (a) and (b), how far each
is from the same networks run in float64 (exact arithmetic), end to end and for the decoder alone, and the
weights' memory. Without --weights, random official-size weights (seeded) stand in: the arithmetic, and so the
time, is the same.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from enliven.engines.cpu_memory import keep_freed_memory
from enliven.engines.keypoint import kinematics as kin
from enliven.engines.keypoint import load_official, random_modules
from enliven.engines.keypoint.accelerate import optimise_for_cpu

from memory import peak_rss_mib, reset_peak_rss  # a sibling module (benchmarks/ is on the path)

MODULES = ("motion_extractor", "stitching", "warping_module", "spade_generator")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run(modules, feature, x_s, source, drivers, timings, warp_cache=None, faults=None):
    """Drive the networks with each crop in turn; seconds (and minor page faults) per module and frame."""
    outputs = []
    reference = None
    faults = {k: [] for k in MODULES} if faults is None else faults

    def timed(name, fn, *args):
        f, t = _faults(), time.perf_counter()
        out = fn(*args)
        timings[name].append(time.perf_counter() - t)
        faults[name].append(_faults() - f)
        return out

    for crop in drivers:
        driving = kin.decode_motion(timed("motion_extractor", modules["motion_extractor"], crop))
        reference = reference or driving
        x_d = kin.relative_motion(source, driving, reference).keypoints()
        x_d = timed("stitching", kin.stitch, modules["stitching"], x_s, x_d)
        warped = timed("warping_module", modules["warping_module"], feature, x_d, x_s, warp_cache)
        outputs.append(timed("spade_generator", modules["spade_generator"], warped["out"]))
    return outputs


def measure(modules, feature, x_s, source, drivers, context, cache_source=False):
    """Per module: each frame's ms and minor page faults, after one warm-up frame; and the outputs."""
    timings, faults = {k: [] for k in MODULES}, {k: [] for k in MODULES}
    with context():
        cache = modules["warping_module"].prepare_source(feature, x_s) if cache_source else None
        run(modules, feature, x_s, source, drivers[:1], {k: [] for k in MODULES}, cache)  # warm-up
        outputs = run(modules, feature, x_s, source, drivers, timings, cache, faults)
    return {k: [1000 * t for t in v] for k, v in timings.items()}, faults, outputs


class _SlicedConv3d(torch.nn.Module):
    """A 3D convolution as a sum over its depth taps of 2D ones: PyTorch's float64 conv3d would build a
    25 GB im2col buffer for the 7×7×7 mask convolution."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        w, k = self.conv.weight, self.conv.kernel_size[0]
        b, c, d, h, width = x.shape
        padded = torch.nn.functional.pad(x, (0, 0, 0, 0, k // 2, k // 2))
        out = sum(
            torch.nn.functional.conv2d(
                padded[:, :, t : t + d].transpose(1, 2).reshape(b * d, c, h, width), w[:, :, t], padding=k // 2
            )
            for t in range(k)
        )
        return out.view(b, d, -1, h, width).transpose(1, 2) + self.conv.bias.view(1, -1, 1, 1, 1)


def exact_outputs(plain, source_image, drivers):
    """The plain networks in float64 on the first driving frame: what exact arithmetic gives."""
    exact = {k: copy.deepcopy(plain[k]).double() for k in ("appearance_feature_extractor", *MODULES)}
    dense = exact["warping_module"].dense_motion_network
    dense.mask = _SlicedConv3d(dense.mask)
    with torch.no_grad():
        image = source_image.double()
        feature = exact["appearance_feature_extractor"](image)
        source = kin.decode_motion(exact["motion_extractor"](image))
        return run(exact, feature, source.keypoints(), source, [drivers[0].double()], {k: [] for k in MODULES})[0]


def onnx_timings(plain, feature, x_s, drivers, threads) -> None:
    """The exported graphs in onnxruntime on the same inputs: time per frame and difference to PyTorch."""
    import tempfile

    from enliven.engines.keypoint import export_onnx
    from enliven.engines.keypoint.onnx_export import OnnxModules

    kp_d = x_s * 0.95
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        export_onnx(plain, tmp)
        graphs = OnnxModules(tmp, threads)
        graphs.motion_extractor(drivers[0])  # warm-up
        t = time.perf_counter()
        for d in drivers:
            graphs.motion_extractor(d)
        m_ms = 1000 * (time.perf_counter() - t) / len(drivers)
        graphs.warp_decode(feature, kp_d, x_s)
        t = time.perf_counter()
        for _ in drivers:
            image = graphs.warp_decode(feature, kp_d, x_s)
        wg_ms = 1000 * (time.perf_counter() - t) / len(drivers)
        expected = plain["spade_generator"](plain["warping_module"](feature, kp_d, x_s)["out"])
    diff = float((image - expected).abs().max())
    print(f"onnxruntime: motion_extractor {m_ms:.1f} ms, warping+spade {wg_ms:.1f} ms per frame; "
          f"max |difference| to PyTorch on identical inputs {diff:.1e}")


def _mib(modules) -> float:
    tensors = [t for m in modules.values() for t in list(m.parameters()) + list(m.buffers())]
    tensors += [t for m in modules.values() for sub in m.modules() for t in getattr(sub, "_spectra", {}).values()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


MODES = {
    "baseline": "the official networks, eager",
    "optimised": "our CPU path, freed memory kept",
    "plain-kept": "the official networks, freed memory kept",
}


def inputs(weights: str | None, frames: int):
    """The networks and one source and ``frames`` driving crops, the same in every process (seeded)."""
    plain = load_official(weights) if weights else random_modules()
    g = torch.Generator().manual_seed(1)
    source_image = torch.rand(1, 3, 256, 256, generator=g)
    drivers = [torch.rand(1, 3, 256, 256, generator=g) for _ in range(frames)]
    with torch.no_grad():  # once per source, identical for every path
        feature = plain["appearance_feature_extractor"](source_image)
        source = kin.decode_motion(plain["motion_extractor"](source_image))
    return plain, source_image, drivers, feature, source, source.keypoints()


def child(mode: str, args) -> None:
    """One run of ``mode`` in this (fresh) process; prints its timings, page faults and peak memory as JSON."""
    plain, _, drivers, feature, source, x_s = inputs(args.weights, args.frames)
    kept = False
    if mode == "optimised":
        modules, context, cache_source = optimise_for_cpu(plain), torch.inference_mode, True
        del plain  # the engine keeps only the rewritten networks
    else:
        modules, context, cache_source = plain, torch.no_grad, False
    gc.collect()
    if mode != "baseline":  # after the rewrite, as the engine's backend does: its float64 temporaries go back first
        kept = keep_freed_memory()
    reset = reset_peak_rss()  # the peak of warping and decoding frames, not of building or rewriting the networks
    ms, faults, _ = measure(modules, feature, x_s, source, drivers, context, cache_source)
    print(json.dumps({"ms": ms, "faults": faults, "peak_mib": peak_rss_mib(), "peak_reset": reset, "kept": kept}))


def _spread(values: list[float]) -> str:
    return f"min {min(values):.2f}x, median {statistics.median(values):.2f}x, max {max(values):.2f}x"


def timings_in_turn(args) -> dict[str, list[dict]]:
    """Each mode in a fresh process, alternating a b c a b c ... for ``args.rounds`` rounds."""
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    command = [sys.executable, __file__, "--frames", str(args.frames), "--threads", str(args.threads)]
    command += ["--weights", args.weights] if args.weights else []
    for r in range(args.rounds):
        for mode in MODES:
            print(f"  round {r + 1}/{args.rounds}: {mode} ...", file=sys.stderr, flush=True)
            out = subprocess.run(command + ["--child", mode], capture_output=True, text=True, check=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights",
                        help="official LivePortrait weights folder (default: random official-size weights)")
    parser.add_argument("--frames", type=int, default=3, help="driving frames timed per run, after one warm-up frame")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs, alternated")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--onnx", action="store_true", help="also time the exported graphs in onnxruntime")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args)
        return

    runs = timings_in_turn(args)
    # Each run's median frame per module; over rounds, the median of those. Speed-ups pair the runs of one round.
    per_run = {m: [{k: statistics.median(v) for k, v in run["ms"].items()} for run in runs[m]] for m in MODES}
    module_ms = {m: {k: statistics.median(r[k] for r in per_run[m]) for k in MODULES} for m in MODES}
    totals = {m: [sum(r.values()) for r in per_run[m]] for m in MODES}
    speed_up = [b / f for b, f in zip(totals["baseline"], totals["optimised"])]
    allocator = [b / k for b, k in zip(totals["baseline"], totals["plain-kept"])]
    kept = all(run["kept"] for m in ("optimised", "plain-kept") for run in runs[m])

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} threads; "
          f"{'official' if args.weights else 'random official-size'} weights; {args.rounds} rounds of "
          f"{args.frames} driving frames per run (after a warm-up frame), runs alternated in fresh processes")
    print(f"{'module':<18}{'baseline ms':>14}{'optimised ms':>14}{'speed-up':>10}")
    for k in MODULES:
        b, f = module_ms["baseline"][k], module_ms["optimised"][k]
        print(f"{k:<18}{b:14.1f}{f:14.1f}{b / f:10.2f}x")
    tb, tf = (statistics.median(totals[m]) for m in ("baseline", "optimised"))
    print(f"{'per frame':<18}{tb:14.1f}{tf:14.1f}{statistics.median(speed_up):10.2f}x  (median of the rounds)")
    print(f"speed-up over {args.rounds} rounds (baseline / optimised, side by side): {_spread(speed_up)}")
    if kept:
        tk = statistics.median(totals["plain-kept"])
        print(f"of which freed memory kept for reuse: the plain networks go from {tb:.0f} to {tk:.0f} ms per frame "
              f"({_spread(allocator)}); the rest is fewer multiplications and the source cache")
    else:
        print("freed memory could not be kept for reuse here (not glibc, or ENLIVEN_KEEP_FREED_MEMORY=0)")
    page = os.sysconf("SC_PAGE_SIZE")

    def faulted(faults: dict[str, list[int]]) -> str:  # median frame's page faults of W and G, in GB
        modules = ("warping_module", "spade_generator")
        return " + ".join(f"{statistics.median(faults[k]) * page / 1e9:.2f}" for k in modules)

    print("page-faulted in per frame, warping + decoder (GB): " + ", ".join(
        f"{m} {faulted({k: [f for run in runs[m] for f in run['faults'][k]] for k in MODULES})}" for m in MODES))
    peaks = {m: max(run["peak_mib"] for run in runs[m]) / 1024 for m in MODES}
    since = "while warping and decoding" if all(r["peak_reset"] for m in MODES for r in runs[m]) else "whole process"
    print(f"peak resident memory {since} (weights included, largest over rounds): "
          + ", ".join(f"{m} {peaks[m]:.1f} GiB" for m in MODES))

    # Accuracy, in this process, before its own freed memory is kept: float64 convolutions' multi-GB im2col
    # buffers would otherwise stay in the heap.
    plain, source_image, drivers, feature, source, x_s = inputs(args.weights, args.frames)
    fast = optimise_for_cpu(plain)
    base_faults, fast_faults = {k: [] for k in MODULES}, {k: [] for k in MODULES}
    with torch.no_grad():
        base_out = run(plain, feature, x_s, source, drivers, {k: [] for k in MODULES}, None, base_faults)
    with torch.inference_mode():
        cache = fast["warping_module"].prepare_source(feature, x_s)
        fast_out = run(fast, feature, x_s, source, drivers, {k: [] for k in MODULES}, cache, fast_faults)
    exact = exact_outputs(plain, source_image, drivers)
    with torch.no_grad():  # module by module on identical inputs: isolates each rewrite's own error
        kp_d = x_s * 0.95
        w_plain, w_fast = plain["warping_module"](feature, kp_d, x_s), fast["warping_module"](feature, kp_d, x_s)
        w_diff = float((w_plain["out"] - w_fast["out"]).abs().max())
        g_plain, g_fast = plain["spade_generator"](w_plain["out"]), fast["spade_generator"](w_plain["out"])
        g_diff = float((g_plain - g_fast).abs().max())
        g_exact = copy.deepcopy(plain["spade_generator"]).double()(w_plain["out"].double())
        plain_error, fast_error = (float((g.double() - g_exact).abs().max()) for g in (g_plain, g_fast))
    diff = max(float((a - b).abs().max()) for a, b in zip(base_out, fast_out))
    base_exact, fast_exact = (float((out[0].double() - exact).abs().max()) for out in (base_out, fast_out))
    # this process never keeps freed memory: each frame maps its temporaries afresh
    print(f"without freed memory kept, page-faulted in per frame, warping + decoder (GB): baseline "
          f"{faulted(base_faults)}, optimised {faulted(fast_faults)}")
    print(f"max |output difference| end to end = {diff:.2e} (images in [0, 1]); "
          f"per module on identical inputs: W {w_diff:.1e}, G {g_diff:.1e}")
    print(f"against the plain networks in float64 (exact arithmetic), first frame end to end: "
          f"baseline {base_exact:.1e}, optimised {fast_exact:.1e}; G alone: baseline {plain_error:.1e}, "
          f"optimised {fast_error:.1e}")
    print(f"weights in memory: baseline {_mib(plain):.0f} MiB, optimised {_mib(fast):.0f} MiB (transformed kernels, "
          f"mask spectrum included)")
    if args.onnx:
        onnx_timings(plain, feature, x_s, drivers, args.threads)
    if not args.weights:
        print("note: untrained weights make G chaotic (a 1e-6 input change moves its output by ~1e-4), so the "
              "end-to-end difference overstates what trained weights give")


if __name__ == "__main__":
    main()
