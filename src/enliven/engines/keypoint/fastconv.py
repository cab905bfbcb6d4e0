"""Convolutions that do the same arithmetic in fewer multiplications (CPU inference only).

On a CPU the LivePortrait decoder is bound by multiply-adds (once its temporaries stop page-faulting,
see ``enliven.engines.cpu_memory``), so the way to run it faster is to do fewer of them. Exact
rewrites (equal up to float rounding):

- ``WinogradConv2d``: 3×3 convolutions as Winograd F(4×4, 3×3) — 36 products per 4×4 output tile
  instead of 144 — for the wide layers where the transforms are cheap next to the products;
  ``WinogradConv3d`` does the same for 3×3×3 ones, over height and width, slice by slice.
- ``UpsampledConv2d``: a 3×3 convolution of a nearest-upsampled map, computed at the low
  resolution. After a ×s nearest upsampling every output pixel's 3×3 window covers at most 2×2
  distinct low-resolution pixels, so each of the s² sub-pixel phases is a 2×2 convolution of the
  small map (SPADE's label convolutions in the decoder's upsampling blocks are such convolutions).
- ``FFTConv3d``: the warping module's 7×7×7 mask convolution by tiled FFTs (overlap-save).
- ``FoldConv2d``: not fewer multiplications but a faster order for them, where the output has a
  single channel (the occlusion map).
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn


def _polynomial(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients (lowest power first) of the product of (x − root)."""
    coefficients = [Fraction(1)]
    for root in roots:
        shifted = [Fraction(0)] + coefficients
        coefficients = [shifted[i] - root * (coefficients[i] if i < len(coefficients) else 0)
                        for i in range(len(shifted))]
    return coefficients


def winograd_matrices(points, m: int = 4, r: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Aᵀ, G, Bᵀ of Winograd F(m, r) by Toom–Cook from m + r − 2 finite points and ∞ (float64).

    y = Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of a tile d of m + r − 1 inputs with a kernel g.
    """
    a = [Fraction(p) for p in points]
    n = m + r - 1
    if len(a) != n - 1 or len(set(a)) != len(a):
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct finite points")
    at, g, bt = (torch.zeros(shape, dtype=torch.float64) for shape in ((m, n), (n, r), (n, n)))
    for j, aj in enumerate(a):
        others = a[:j] + a[j + 1 :]
        scale = 1
        for al in others:
            scale *= aj - al
        at[:, j] = torch.tensor([float(aj**i) for i in range(m)], dtype=torch.float64)
        g[j] = torch.tensor([float(aj**k / scale) for k in range(r)], dtype=torch.float64)
        bt[j, : n - 1] = torch.tensor([float(c) for c in _polynomial(others)], dtype=torch.float64)
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1
    bt[n - 1] = torch.tensor([float(c) for c in _polynomial(a)], dtype=torch.float64)
    return at, g, bt


# Points 0, −1, 1, ½, −2 and ∞: as accurate in float32 as a direct convolution here (max error ~1e-5 on
# 512-channel layers), where the textbook 0, ±1, ±2 set is ~3× worse (Barabasz et al., 2020, on point choice).
_AT, _G, _BT = winograd_matrices((0, -1, 1, Fraction(1, 2), -2))
# The input transform as 36 stride-4 6×6 filters (one per transformed tile position), the output transform
# as one (16 × 36) matrix, and the transformed position that reaches every output of its tile with
# weight 1: adding a bias there adds it to the whole output at 1/36 of the cost of a pass over it.
_INPUT_FILTERS = torch.kron(_BT, _BT).float().reshape(36, 1, 6, 6)
_OUTPUT_TRANSFORM = torch.kron(_AT, _AT)
_BIAS_POSITION = int(torch.nonzero((_OUTPUT_TRANSFORM == 1).all(dim=0))[0])
_OUTPUT_TRANSFORM = _OUTPUT_TRANSFORM.float()


def _transformed_tiles(planes: torch.Tensor) -> torch.Tensor:
    """(planes, h, w) → (planes, 36, tiles): every 6×6 input tile (stride 4) in the Winograd domain."""
    p, h, w = planes.shape
    th, tw = -(-h // 4), -(-w // 4)
    planes = planes.reshape(p, 1, h, w)
    if h % 4 or w % 4:
        planes = F.pad(planes, (0, 4 * tw - w, 0, 4 * th - h))
    return F.conv2d(planes, _INPUT_FILTERS, stride=4, padding=1).view(p, 36, th * tw)


def _untransformed(m: torch.Tensor, bias: torch.Tensor | None, h: int, w: int) -> torch.Tensor:
    """(36, planes, tiles) products → (planes, h, w) outputs, ``bias`` (planes, 1) added."""
    if bias is not None:
        m[_BIAS_POSITION] += bias
    p, th, tw = m.shape[1], -(-h // 4), -(-w // 4)
    y = torch.mm(_OUTPUT_TRANSFORM, m.reshape(36, -1)).view(4, 4, p, th, tw)
    out = m.new_empty(p, 4 * th, 4 * tw)
    out.view(p, th, 4, tw, 4).copy_(y.permute(2, 3, 0, 4, 1))  # into place: faster than a pixel shuffle
    return out[:, :h, :w] if (h % 4 or w % 4) else out


def winograd_pays(in_channels: int, out_channels: int, depth_taps: int = 1) -> bool:
    """Whether F(4×4, 3×3) beats oneDNN's direct convolution (measured on AVX2, see benchmarks/).

    The transforms cost memory traffic in proportion to in + out channels, the products save work
    in proportion to in × out: narrow layers lose. Measured with freed memory kept for reuse
    (``enliven.engines.cpu_memory``): in 2-D, 128 → 128 channels at 256² gains 1.1× and 256 → 64
    loses (0.9×); a 3×3×3 convolution reuses each transformed slice for its three depth taps, so
    narrower layers pay: 110 → 64 at 16×64² gains 1.5×, 128 → 32 only 1.08×.
    """
    harmonic = in_channels * out_channels / (in_channels + out_channels)
    return harmonic >= (60 if depth_taps == 1 else 35)


def _is_plain_3x3(conv: nn.Conv2d) -> bool:
    return (
        conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
        and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
    )


def _is_plain_3x3x3(conv: nn.Conv3d) -> bool:
    return (
        conv.kernel_size == (3, 3, 3) and conv.stride == (1, 1, 1) and conv.padding == (1, 1, 1)
        and conv.dilation == (1, 1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
    )


def _per_item(one, x: torch.Tensor) -> torch.Tensor:
    """``one`` applied to each item of the batch (a batch of one is not copied)."""
    return one(x[0]).unsqueeze(0) if x.shape[0] == 1 else torch.stack([one(item) for item in x])


class WinogradConv2d(nn.Module):
    """A 3×3, stride 1, padding 1 convolution computed as Winograd F(4×4, 3×3).

    The input transform is a stride-4 6×6 convolution of each channel, which the 36 products read
    in place; the output transform is one (16 × 36) matrix product, copied into place.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        w = weight.detach().double()
        u = torch.einsum("ij,ocjk,lk->iloc", _G, w, _G)  # each output tile's 6×6 transformed kernel
        self.register_buffer("u", u.reshape(36, w.shape[0], w.shape[1]).float().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().reshape(-1, 1).clone())

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> WinogradConv2d:
        if not _is_plain_3x3(conv):
            raise ValueError("Winograd F(4x4, 3x3) needs a plain 3x3 convolution (stride 1, padding 1)")
        return cls(conv.weight, conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_item(self._one, x)

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w = x.shape
        m = torch.bmm(self.u, _transformed_tiles(x).transpose(0, 1))  # (36, out, tile)
        return _untransformed(m, self.bias, h, w)


class WinogradConv3d(nn.Module):
    """A 3×3×3, stride 1, padding 1 convolution: Winograd F(4×4, 3×3) over height and width, the
    three depth taps summed in the transformed domain (each input slice is transformed once)."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if not _is_plain_3x3x3(conv):
            raise ValueError("WinogradConv3d needs a plain 3x3x3 convolution (stride 1, padding 1)")
        w = conv.weight.detach().double()
        u = torch.einsum("ij,ocdjk,lk->diloc", _G, w, _G)  # (depth tap, 6, 6, out, in)
        self.register_buffer("u", u.reshape(3, 36, w.shape[0], w.shape[1]).float().contiguous())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float().reshape(-1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_item(self._one, x)

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        c, d, h, w = x.shape
        transformed = _transformed_tiles(x.reshape(c * d, h, w))
        t = transformed.shape[2]
        # (36, in, depth + 2 zero slices, tile): each depth tap's operand is then a plain strided matrix
        v = x.new_zeros(36, c, d + 2, t)
        v[:, :, 1 : d + 1] = transformed.view(c, d, 36, t).permute(2, 0, 1, 3)
        v = v.view(36, c, -1)
        m = torch.bmm(self.u[0], v[:, :, : d * t])
        for k in (1, 2):
            m.baddbmm_(self.u[k], v[:, :, k * t : (k + d) * t])
        o = m.shape[1]
        bias = None if self.bias is None else self.bias.repeat_interleave(d, dim=0)  # one per (out, depth) plane
        return _untransformed(m.view(36, o * d, t), bias, h, w).view(o, d, h, w)


def fast_conv2d(conv: nn.Conv2d) -> nn.Module:
    """``conv`` itself, or its Winograd form where that is faster."""
    if _is_plain_3x3(conv) and winograd_pays(conv.in_channels, conv.out_channels):
        return WinogradConv2d.from_conv(conv)
    return conv


def fast_conv3d(conv: nn.Conv3d) -> nn.Module:
    """``conv`` itself, or its Winograd form where that is faster."""
    if _is_plain_3x3x3(conv) and winograd_pays(conv.in_channels, conv.out_channels, depth_taps=3):
        return WinogradConv3d(conv)
    return conv


def _phase_rows(scale: int, phase: int) -> tuple[int, torch.Tensor]:
    """Where the 3 taps of sub-pixel ``phase`` land in the low-resolution map: (first row offset, 2×3 map)."""
    offsets = [(phase + k - 1) // scale for k in range(3)]  # each in {-1, 0, 1}
    first = -1 if min(offsets) < 0 else 0
    rows = torch.zeros(2, 3, dtype=torch.float64)
    for k, off in enumerate(offsets):
        rows[off - first, k] = 1.0
    return first, rows


class UpsampledConv2d(nn.Module):
    """``[conv(F.interpolate(x, scale_factor=s, mode="nearest")) for s, conv in convs]``, done at x's size.

    Every conv is a plain 3×3 one. Each sub-pixel phase is a 2×2 convolution of the small map whose
    window starts one row (column) above (left of) the pixel or on it; all distinct ones, for all
    convs, are one matrix product of the map's 2×2 patches (an im2col of 4 taps), then interleaved.
    """

    def __init__(self, convs: list[tuple[int, nn.Conv2d]]):
        super().__init__()
        self.layout = []  # per conv: (scale, out channels, [(row start, col start, first column)] per phase)
        columns = []
        for scale, conv in convs:
            if not _is_plain_3x3(conv):
                raise ValueError("UpsampledConv2d needs plain 3x3 convolutions")
            w = conv.weight.detach().double()
            bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
            phases, computed = [], {}
            for a in range(scale):
                row_start, rows = _phase_rows(scale, a)
                for b in range(scale):
                    col_start, cols = _phase_rows(scale, b)
                    # from ×3 on, inner phases see the same low-resolution pixels (at ×4, 9 distinct of 16)
                    key = (row_start, tuple(rows.flatten().tolist()), col_start, tuple(cols.flatten().tolist()))
                    if key not in computed:
                        computed[key] = sum(c.shape[1] for c in columns)
                        kernel = torch.einsum("rk,ockl,ql->crqo", rows, w, cols)  # (in, 2, 2, out): im2col order
                        columns.append(torch.cat([kernel.reshape(-1, w.shape[0]), bias[None]]))
                    phases.append((row_start, col_start, computed[key]))
            self.layout.append((scale, w.shape[0], phases))
        matrix = torch.cat(columns, dim=1).float()
        self.register_buffer("weight", matrix[:-1].contiguous())  # (in·4, all phases' outputs)
        self.register_buffer("bias", matrix[-1].contiguous())

    def forward(self, x: torch.Tensor, relu: bool = False) -> list[torch.Tensor]:
        """``relu``: apply it to the results (cheaper before the phases are interleaved)."""
        b, c, h, w = x.shape
        padded = F.pad(x, (1, 1, 1, 1))
        patches = padded.unfold(2, 2, 1).unfold(3, 2, 1)  # (b, c, h+1, w+1, 2, 2): windows from rows i-1, i
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b * (h + 1) * (w + 1), c * 4)
        y = torch.addmm(self.bias, patches, self.weight)
        if relu:
            y = y.relu_()
        y = y.view(b, h + 1, w + 1, -1)
        outs = []
        for scale, channels, phases in self.layout:
            out = y.new_empty(b, h, scale, w, scale, channels)  # channels last: each phase copies whole pixels
            for i, (row_start, col_start, first) in enumerate(phases):
                block = y[:, row_start + 1 : row_start + 1 + h, col_start + 1 : col_start + 1 + w,
                          first : first + channels]
                out[:, :, i // scale, :, i % scale] = block
            # back to channels first: the convolutions that read these write channels first, and the
            # element-wise SPADE arithmetic is slow on mixed memory layouts
            outs.append(out.view(b, h * scale, w * scale, channels).permute(0, 3, 1, 2).contiguous())
        return outs


class FoldConv2d(nn.Module):
    """A stride-1 'same' convolution with very few output channels (the occlusion map's 7×7, 2272 → 1).

    oneDNN runs such a layer far below peak. Here it is one matrix product, every output channel's
    kernel taps against all input channels, whose shifted results col2im (``F.fold``) sums.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        kh, kw = conv.kernel_size
        if (
            kh % 2 == 0 or kw % 2 == 0 or conv.padding != (kh // 2, kw // 2) or conv.stride != (1, 1)
            or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
        ):
            raise ValueError("FoldConv2d needs an odd kernel with 'same' zero padding, stride 1")
        self.kernel_size, self.padding = conv.kernel_size, conv.padding
        # fold adds column (o, tap) at the output tap − padding away from where it was computed, so
        # the taps are listed in reverse to make a correlation
        taps = conv.weight.detach().flip(2, 3).permute(0, 2, 3, 1)  # (out, kh, kw, in)
        self.register_buffer("taps", taps.reshape(-1, conv.in_channels).contiguous())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        columns = torch.matmul(self.taps, x.reshape(b, c, h * w))  # (b, out·kh·kw, h·w)
        y = F.fold(columns, (h, w), self.kernel_size, padding=self.padding)
        return y if self.bias is None else y + self.bias


class FFTConv3d(nn.Module):
    """A 3D convolution with an odd cubic kernel and 'same' zero padding, by overlap-save FFTs.

    Height and width are cut into tiles of ``tile`` outputs (FFT length tile + k − 1); the depth,
    short in LivePortrait's volumes, is transformed whole. Each frequency is then one small
    complex matrix product over channels.
    """

    def __init__(self, conv: nn.Conv3d, tile: int = 16):
        super().__init__()
        k = conv.kernel_size[0]
        if (
            conv.kernel_size != (k,) * 3 or k % 2 == 0 or conv.padding != (k // 2,) * 3 or conv.stride != (1, 1, 1)
            or conv.dilation != (1, 1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
        ):
            raise ValueError("FFTConv3d needs an odd cubic kernel with 'same' zero padding, stride 1")
        self.k, self.tile = k, tile
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().reshape(1, -1, 1, 1, 1).clone())
        self._spectra: dict[int, torch.Tensor] = {}  # per FFT depth: the kernel's spectrum, (freq, in, out)

    def _kernel_spectrum(self, depth_fft: int) -> torch.Tensor:
        """The kernel's spectrum as a real (freq, 2·in, 2·out) block matrix [[re, im], [−im, re]].

        Complex products written as real ones: one batched real matrix product per frame (the
        complex batched product loops over frequencies on CPU).
        """
        if depth_fft not in self._spectra:
            n = self.tile + self.k - 1
            spectrum = torch.fft.rfftn(self.weight.double(), s=(depth_fft, n, n), dim=(2, 3, 4)).conj()
            o, c = spectrum.shape[:2]
            spectrum = spectrum.reshape(o, c, -1).permute(2, 1, 0)  # (freq, in, out)
            re, im = spectrum.real, spectrum.imag
            block = torch.cat([torch.cat([re, im], dim=2), torch.cat([-im, re], dim=2)], dim=1)
            self._spectra[depth_fft] = block.float().contiguous()
        return self._spectra[depth_fft]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        k, t = self.k, self.tile
        n, p = t + k - 1, k // 2
        th, tw = -(-h // t), -(-w // t)
        depth_fft = d + k - 1  # correlation outputs 0..d-1 then never wrap around
        padded = F.pad(x, (p, tw * t - w + p, p, th * t - h + p, p, p))
        tiles = padded.unfold(3, n, t).unfold(4, n, t)  # (b, c, d+k-1, th, tw, n, n), a view
        spectrum = torch.fft.rfftn(tiles, dim=(2, 5, 6))  # (b, c, D, th, tw, N, N')
        freq_shape = (spectrum.shape[2],) + spectrum.shape[5:]
        parts = torch.view_as_real(spectrum).permute(2, 5, 6, 0, 3, 4, 7, 1)  # (D, N, N', b, th, tw, re/im, in)
        parts = parts.reshape(-1, b * th * tw, 2 * c)  # (freq, tile, [re in, im in])
        product = torch.bmm(parts, self._kernel_spectrum(depth_fft))  # (freq, tile, [re out, im out])
        o = product.shape[2] // 2
        product = product.view(-1, b * th * tw, 2, o).permute(1, 3, 0, 2).contiguous()
        product = torch.view_as_complex(product).reshape(b * th * tw, o, *freq_shape)
        y = torch.fft.irfftn(product, s=(depth_fft, n, n), dim=(2, 3, 4))[:, :, :d, :t, :t]
        y = y.reshape(b, th, tw, o, d, t, t).permute(0, 3, 4, 1, 5, 2, 6).reshape(b, o, d, th * t, tw * t)
        y = y[:, :, :, :h, :w]
        return y if self.bias is None else y + self.bias

