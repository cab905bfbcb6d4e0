"""The fewer-multiplication convolutions against PyTorch's direct ones, computed in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from enliven.engines.keypoint import fastconv, random_modules, tiny_config
from enliven.engines.keypoint.accelerate import fold_for_inference, optimise_for_cpu
from enliven.engines.keypoint.fastconv import (
    FFTConv3d,
    FoldConv2d,
    UpsampledConv2d,
    WinogradConv2d,
    WinogradConv3d,
    winograd_matrices,
)


@pytest.mark.parametrize("points", [(0, 1, -1, 2, -2), (0, -1, 1, 0.5, -2)])
def test_winograd_matrices_compute_a_correlation(points):
    at, g, bt = winograd_matrices(points)
    torch.manual_seed(0)
    d, k = torch.randn(6, 100, dtype=torch.float64), torch.randn(3, 100, dtype=torch.float64)
    direct = torch.stack([sum(d[i + j] * k[j] for j in range(3)) for i in range(4)])
    torch.testing.assert_close(at @ ((g @ k) * (bt @ d)), direct, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="distinct"):
        winograd_matrices((0, 1, 1, 2, -2))


def _reference(conv, x):
    dims = x.dim() - 2
    op = F.conv2d if dims == 2 else F.conv3d
    return op(x.double(), conv.weight.double(), conv.bias.double(), padding=conv.padding)


def test_winograd_convolution_equals_the_direct_one():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(24, 40, 3, padding=1)
    x = torch.randn(2, 24, 13, 18)  # sizes that are not multiples of the 4×4 tile
    with torch.no_grad():
        expected = _reference(conv, x)
        ours = WinogradConv2d.from_conv(conv)(x).double()
    assert expected.abs().max() > 1  # float32 rounding of outputs this size is ~1e-7 per operation
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="plain 3x3"):
        WinogradConv2d.from_conv(torch.nn.Conv2d(4, 4, 3, padding=1, stride=2))


def test_winograd_3d_convolution_equals_the_direct_one():
    torch.manual_seed(5)
    conv = torch.nn.Conv3d(9, 11, 3, padding=1)
    x = torch.randn(2, 9, 5, 13, 18)  # depth 5; height and width not multiples of the 4×4 tile
    with torch.no_grad():
        expected = _reference(conv, x)
        ours = WinogradConv3d(conv)(x).double()
    assert expected.abs().max() > 1
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="plain 3x3x3"):
        WinogradConv3d(torch.nn.Conv3d(4, 4, 3, padding=0))


@pytest.mark.parametrize("scales", [(2,), (4,), (2, 3, 4)])
def test_upsampled_convolution_is_computed_at_the_small_size(scales):
    torch.manual_seed(2)
    convs = [(s, torch.nn.Conv2d(12, 7, 3, padding=1)) for s in scales]
    x = torch.randn(2, 12, 9, 11)
    with torch.no_grad():
        outs = UpsampledConv2d(convs)(x)
        relu_outs = UpsampledConv2d(convs)(x, relu=True)
    for (s, conv), out, relu_out in zip(convs, outs, relu_outs):
        expected = _reference(conv, F.interpolate(x, scale_factor=s, mode="nearest"))
        torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=0)
        torch.testing.assert_close(relu_out.double(), expected.relu(), atol=2e-5, rtol=0)


@pytest.mark.parametrize("kernel, tile", [(7, 16), (3, 5)])
def test_fft_convolution_equals_the_direct_one(kernel, tile):
    torch.manual_seed(3)
    conv = torch.nn.Conv3d(10, 6, kernel, padding=kernel // 2)
    x = torch.randn(2, 10, 5, 19, 23)
    with torch.no_grad():
        torch.testing.assert_close(FFTConv3d(conv, tile=tile)(x).double(), _reference(conv, x), atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="odd cubic kernel"):
        FFTConv3d(torch.nn.Conv3d(4, 4, 3, padding=0))


def test_fold_convolution_equals_the_direct_one():
    torch.manual_seed(6)
    conv = torch.nn.Conv2d(30, 2, (7, 5), padding=(3, 2))  # a non-square kernel catches swapped taps
    x = torch.randn(2, 30, 11, 14)
    with torch.no_grad():
        torch.testing.assert_close(FoldConv2d(conv)(x).double(), _reference(conv, x), atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="odd kernel"):
        FoldConv2d(torch.nn.Conv2d(4, 1, 4, padding=2))


def test_the_cpu_optimised_modules_keep_the_outputs(monkeypatch):
    monkeypatch.setattr(fastconv, "winograd_pays", lambda *shape, **taps: True)  # tiny layers: force every rewrite
    modules = fold_for_inference(random_modules(tiny_config()))
    fast = optimise_for_cpu(modules)
    assert any(isinstance(m, WinogradConv2d) for m in fast["spade_generator"].modules())
    assert any(isinstance(m, WinogradConv3d) for m in fast["warping_module"].modules())
    assert isinstance(fast["warping_module"].dense_motion_network.occlusion, FoldConv2d)
    torch.manual_seed(4)
    feat = torch.randn(1, 8, 8, 16, 16)
    kp_s, kp_d = torch.rand(1, 21, 3) - 0.5, torch.rand(1, 21, 3) - 0.5
    with torch.no_grad():
        a = modules["warping_module"](feat, kp_d, kp_s)
        b = fast["warping_module"](feat, kp_d, kp_s, fast["warping_module"].prepare_source(feat, kp_s))
        for key in ("out", "occlusion_map", "deformation"):
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)
        image = modules["spade_generator"](a["out"])
        # random decoders amplify rounding (~10× here); a misplaced tap or phase would be off by ~0.1
        torch.testing.assert_close(fast["spade_generator"](a["out"]), image, atol=5e-5, rtol=0)
    assert image.std() > 1e-3  # a decoder whose output does not depend on anything would pass trivially


# The layer shapes winograd_pays's docstring cites, with what the benchmarks measured there (AVX2, see benchmarks/):
# a speed-up above 1.1× rewrites the layer, a loss or a marginal gain (128 → 32 in 3-D: 1.08×) keeps it direct.
_MEASURED = [
    ("2d", 128, 128, True),  # 1.1× at 256²
    ("2d", 256, 64, False),  # 0.9×
    ("3d", 110, 64, True),  # 1.5× at 16×64²
    ("3d", 128, 32, False),  # 1.08×: not worth the transforms' memory
    ("2d", 110, 64, False),  # what pays in 3-D (three depth taps share a transform) loses in 2-D, as 256 → 64 does
]


@pytest.mark.parametrize("kind, cin, cout, rewritten", _MEASURED)
def test_winograd_is_chosen_where_it_was_measured_to_pay(kind, cin, cout, rewritten):
    conv = (torch.nn.Conv2d if kind == "2d" else torch.nn.Conv3d)(cin, cout, 3, padding=1)
    chosen = (fastconv.fast_conv2d if kind == "2d" else fastconv.fast_conv3d)(conv)
    assert isinstance(chosen, WinogradConv2d if kind == "2d" else WinogradConv3d) is rewritten
    assert (chosen is conv) is not rewritten
    taps = {"depth_taps": 3} if kind == "3d" else {}
    assert fastconv.winograd_pays(cin, cout, **taps) is rewritten
