"""Per-module milliseconds per driving frame of the keypoint (LivePortrait) engine: plain vs optimised.

    python benchmarks/keypoint_speed.py [--weights DIR] [--frames 3] [--threads N]

(a) baseline: the official networks run eagerly per frame (M on the driving crop, stitching, W, G),
    as LivePortrait's own loop does;
(b) optimised: what the engine runs on a CPU, ``accelerate.optimise_for_cpu`` (spectral norm and
    BatchNorm folded; decoder and warping module in fewer multiplications: Winograd, sub-pixel, FFT
    and col2im convolutions), with the source-side warping work cached, under ``torch.inference_mode``,
    and freed memory kept for reuse (``enliven.engines.cpu_memory``), then (a) again that way too,
    to show how much of the speed-up comes from the allocator alone.
Both run in this process on the same inputs; the script prints the median frame's ms per module,
the speed-up and the largest output difference, and how far each path is from the same networks run
in float64 (exact arithmetic), end to end and for the decoder alone. Without --weights, random
official-size weights (seeded) stand in: the arithmetic, and so the time, is the same.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

from enliven.engines.cpu_memory import keep_freed_memory
from enliven.engines.keypoint import kinematics as kin
from enliven.engines.keypoint import load_official, random_modules
from enliven.engines.keypoint.accelerate import optimise_for_cpu

MODULES = ("motion_extractor", "stitching", "warping_module", "spade_generator")


def run(modules, feature, x_s, source, drivers, timings, warp_cache=None):
    outputs = []
    reference = None
    for crop in drivers:
        t = time.perf_counter()
        driving = kin.decode_motion(modules["motion_extractor"](crop))
        timings["motion_extractor"].append(time.perf_counter() - t)
        reference = reference or driving
        x_d = kin.relative_motion(source, driving, reference).keypoints()
        t = time.perf_counter()
        x_d = kin.stitch(modules["stitching"], x_s, x_d)
        timings["stitching"].append(time.perf_counter() - t)
        t = time.perf_counter()
        warped = modules["warping_module"](feature, x_d, x_s, warp_cache)
        timings["warping_module"].append(time.perf_counter() - t)
        t = time.perf_counter()
        outputs.append(modules["spade_generator"](warped["out"]))
        timings["spade_generator"].append(time.perf_counter() - t)
    return outputs


def measure(modules, feature, x_s, source, drivers, context, cache_source=False):
    timings = {k: [] for k in MODULES}
    with context():
        cache = modules["warping_module"].prepare_source(feature, x_s) if cache_source else None
        run(modules, feature, x_s, source, drivers[:1], {k: [] for k in MODULES}, cache)  # warm-up
        outputs = run(modules, feature, x_s, source, drivers, timings, cache)
    # the median frame: this shared machine's speed drifts by tens of percent from one second to the next
    return {k: 1000 * statistics.median(v) for k, v in timings.items()}, outputs


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="official LivePortrait weights folder (default: random official-size weights)")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--onnx", action="store_true", help="also time the exported graphs in onnxruntime")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    plain = load_official(args.weights) if args.weights else random_modules()
    fast = optimise_for_cpu(plain)
    g = torch.Generator().manual_seed(1)
    source_image = torch.rand(1, 3, 256, 256, generator=g)
    drivers = [torch.rand(1, 3, 256, 256, generator=g) for _ in range(args.frames)]
    with torch.no_grad():  # once per source, identical for both paths
        feature = plain["appearance_feature_extractor"](source_image)
        source = kin.decode_motion(plain["motion_extractor"](source_image))
        x_s = source.keypoints()

    base_ms, base_out = measure(plain, feature, x_s, source, drivers, torch.no_grad)
    # Accuracy work first, before freed memory is kept: float64 convolutions' multi-GB im2col buffers
    # would otherwise stay in the heap.
    exact = exact_outputs(plain, source_image, drivers)
    with torch.no_grad():  # module by module on identical inputs: isolates each rewrite's own error
        kp_d = x_s * 0.95
        w_plain, w_fast = plain["warping_module"](feature, kp_d, x_s), fast["warping_module"](feature, kp_d, x_s)
        w_diff = float((w_plain["out"] - w_fast["out"]).abs().max())
        g_plain, g_fast = plain["spade_generator"](w_plain["out"]), fast["spade_generator"](w_plain["out"])
        g_diff = float((g_plain - g_fast).abs().max())
        g_exact = copy.deepcopy(plain["spade_generator"]).double()(w_plain["out"].double())
        plain_error, fast_error = (float((g.double() - g_exact).abs().max()) for g in (g_plain, g_fast))
    kept = keep_freed_memory()  # what the engine's CPU backend does; it cannot be undone, so it comes second
    fast_ms, fast_out = measure(fast, feature, x_s, source, drivers, torch.inference_mode, cache_source=True)
    # the same plain networks with freed memory kept: how much of the speed-up is the allocator's
    base_kept_ms = measure(plain, feature, x_s, source, drivers, torch.no_grad)[0] if kept else None
    diff = max(float((a - b).abs().max()) for a, b in zip(base_out, fast_out))
    base_exact, fast_exact = (float((out[0].double() - exact).abs().max()) for out in (base_out, fast_out))

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} threads; "
          f"{'official' if args.weights else 'random official-size'} weights; {args.frames} driving frames")
    print(f"{'module':<18}{'baseline ms':>14}{'optimised ms':>14}{'speed-up':>10}")
    for k in MODULES:
        print(f"{k:<18}{base_ms[k]:14.1f}{fast_ms[k]:14.1f}{base_ms[k] / fast_ms[k]:10.2f}x")
    tb, tf = sum(base_ms.values()), sum(fast_ms.values())
    print(f"{'per frame':<18}{tb:14.1f}{tf:14.1f}{tb / tf:10.2f}x")
    if base_kept_ms is not None:
        tk = sum(base_kept_ms.values())
        print(f"of which: freed memory kept for reuse (the plain networks go from {tb:.0f} to {tk:.0f} ms, "
              f"{tb / tk:.2f}x), fewer multiplications and the source cache ({tk / tf:.2f}x on top)")
    else:
        print("freed memory could not be kept for reuse here (not glibc, or ENLIVEN_KEEP_FREED_MEMORY=0)")
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
