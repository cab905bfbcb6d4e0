"""Inference-only rewrites of the LivePortrait modules that keep their outputs (to float rounding).

- Spectral normalisation is a fixed rescaling at inference: divide each weight once, drop the hook.
- BatchNorm after a convolution is an affine map per channel: fold it into the convolution.
- On a CPU (``optimise_for_cpu``), the decoder and the warping module's hourglass, mask and occlusion
  convolutions in fewer multiplications (``fastconv``).

The source-side caches (F(s), the source keypoints, the compressed source feature and its Gaussians)
live in the engine; see ``KeypointEngine.prepare``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from enliven.engines.keypoint.fastconv import FFTConv3d, FoldConv2d, UpsampledConv2d, fast_conv2d, fast_conv3d
from enliven.engines.keypoint.networks.blocks import SPADEResnetBlock
from enliven.engines.keypoint.networks.spade import SPADEDecoder


def _fold_bn(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    conv.weight.data.mul_(scale.reshape(shape))
    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


@torch.no_grad()
def fold_for_inference(modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """A copy of ``modules`` with spectral norms removed and conv→BatchNorm pairs folded (eval mode)."""
    out = {name: copy.deepcopy(m).eval() for name, m in modules.items()}
    for module in out.values():
        for sub in list(module.modules()):
            for hook in list(getattr(sub, "_forward_pre_hooks", {}).values()):
                if type(hook).__name__ == "SpectralNorm":
                    nn.utils.remove_spectral_norm(sub)
                    break
            conv, norm = getattr(sub, "conv", None), getattr(sub, "norm", None)
            if isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
                _fold_bn(conv, norm)
                sub.norm = nn.Identity()
            compress = getattr(sub, "compress", None)
            if isinstance(compress, nn.Conv3d) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
                _fold_bn(compress, norm)
                sub.norm = nn.Identity()
    return out


def _merged_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One convolution computing several that read the same input (outputs concatenated)."""
    first = convs[0]
    merged = nn.Conv2d(first.in_channels, sum(c.out_channels for c in convs), first.kernel_size, padding=first.padding)
    merged.weight.data = torch.cat([c.weight.data for c in convs])
    merged.bias.data = torch.cat([c.bias.data for c in convs])
    return merged


def _after_1x1(conv: nn.Conv2d, pointwise: nn.Conv2d) -> nn.Conv2d:
    """``pointwise(conv(x))`` as one convolution (a 1×1 convolution without bias is a matrix)."""
    matrix = pointwise.weight.data[:, :, 0, 0]
    out = nn.Conv2d(conv.in_channels, matrix.shape[0], conv.kernel_size, padding=conv.padding)
    out.weight.data = torch.einsum("om,mcij->ocij", matrix, conv.weight.data)
    out.bias.data = matrix @ conv.bias.data
    return out


def _norms(block: SPADEResnetBlock) -> list[nn.Module]:
    """The block's SPADEs, in the order it applies them: shortcut (if learned), then 0, then 1."""
    return [block.norm_s, block.norm_0, block.norm_1] if block.learned_shortcut else [block.norm_0, block.norm_1]


class _FastSPADEBlock(nn.Module):
    """A ``SPADEResnetBlock`` whose label activations are computed outside (see ``FastSPADEDecoder``).

    - Each SPADE's γ and β come from one convolution, and the 1 of n·(1 + γ) is in γ's bias.
    - The shortcut's 1×1 convolution is linear, so it is applied to the shortcut SPADE's β before
      β is computed: conv_s(n·(1 + γ) + β) = conv_s(n·(1 + γ)) + (conv_s ∘ mlp_β)(label), a β that
      is as narrow as the block's output.
    - The shortcut's and the first SPADE's instance norms are of the same input: computed once,
      and, in upsampling blocks, at the input's size (a nearest ×2 upsampling keeps every
      channel's mean and variance), which is all the block needs of its upsampled input.
    """

    def __init__(self, block: SPADEResnetBlock):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        pairs = [[norm.mlp_gamma, norm.mlp_beta] for norm in _norms(block)]
        if self.learned_shortcut:
            pairs[0][1] = _after_1x1(block.norm_s.mlp_beta, block.conv_s)
        self.widths = [[gamma.out_channels, beta.out_channels] for gamma, beta in pairs]
        merged = [_merged_conv(pair) for pair in pairs]
        for conv, (gamma_width, _) in zip(merged, self.widths):
            conv.bias.data[:gamma_width] += 1
        self.modulations = nn.ModuleList(fast_conv2d(conv) for conv in merged)  # 1 + γ, and β
        self.conv_0 = fast_conv2d(block.conv_0)
        self.conv_1 = fast_conv2d(block.conv_1)
        self.conv_s = block.conv_s if self.learned_shortcut else None

    def _scale_shift(self, i: int, label: torch.Tensor) -> list[torch.Tensor]:
        """1 + γ and β of SPADE ``i``: fresh tensors, which the caller overwrites in place."""
        return self.modulations[i](label).split(self.widths[i], dim=1)

    def forward(self, x: torch.Tensor, labels: list[torch.Tensor], upsample: bool = False) -> torch.Tensor:
        """``upsample``: ``x`` is at half the labels' size, the block's input is its nearest ×2 upsampling."""
        normed = F.instance_norm(x)
        if upsample:
            normed = F.interpolate(normed, scale_factor=2)
        first = 1 if self.learned_shortcut else 0
        if self.learned_shortcut:
            scale, shift = self._scale_shift(0, labels[0])
            shortcut = self.conv_s(scale.mul_(normed)).add_(shift)
        elif upsample:
            raise ValueError("an upsampling block needs a learned shortcut")
        else:
            shortcut = x
        scale, shift = self._scale_shift(first, labels[first])
        dx = self.conv_0(F.leaky_relu_(scale.mul_(normed).add_(shift), 2e-1))
        scale, shift = self._scale_shift(first + 1, labels[first + 1])
        dx = self.conv_1(F.leaky_relu_(scale.mul_(F.instance_norm(dx)).add_(shift), 2e-1))
        return dx.add_(shortcut)


class FastSPADEDecoder(nn.Module):
    """``SPADEDecoder`` (folded) reorganised for CPU inference; same inputs and outputs.

    Every SPADE's label convolution reads the same label map (the decoder's input): the first
    convolution and the twelve label convolutions of the middle blocks run as one Winograd
    convolution; those of the upsampling blocks, which read the label map upsampled ×2 and ×4,
    run at the label map's size (``UpsampledConv2d``). Wide 3×3 convolutions use Winograd
    F(4×4, 3×3). See ``_FastSPADEBlock`` for the rest.
    """

    def __init__(self, decoder: SPADEDecoder):
        super().__init__()
        middle = [getattr(decoder, f"G_middle_{i}") for i in range(6)]
        ups = [decoder.up_0, decoder.up_1]

        def label_convs(block):
            return [norm.mlp_shared[0] for norm in _norms(block)]

        self.first_width = decoder.fc.out_channels
        self.hidden = middle[0].norm_0.mlp_shared[0].out_channels
        self.labels_64 = fast_conv2d(_merged_conv([decoder.fc] + [c for b in middle for c in label_convs(b)]))
        self.labels_up = UpsampledConv2d([(2 * (i + 1), c) for i, b in enumerate(ups) for c in label_convs(b)])
        self.middle = nn.ModuleList(_FastSPADEBlock(b) for b in middle)
        self.ups = nn.ModuleList(_FastSPADEBlock(b) for b in ups)
        self.conv_img = decoder.conv_img

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        out = self.labels_64(feature)
        x = out[:, : self.first_width]
        labels = F.relu(out[:, self.first_width :]).split(self.hidden, dim=1)
        up_labels = self.labels_up(feature, relu=True)
        for block in self.middle:
            x = block(x, labels[: len(block.widths)])
            labels = labels[len(block.widths) :]
        for block in self.ups:
            x = block(x, up_labels[: len(block.widths)], upsample=True)
            up_labels = up_labels[len(block.widths) :]
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 2e-1)))


@torch.no_grad()
def optimise_for_cpu(modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """``fold_for_inference``, then the decoder and the warping module's hourglass, mask and occlusion
    convolutions rewritten for speed (``fastconv``).

    Outputs equal the plain modules' up to float rounding (see ``benchmarks/keypoint_speed.py``).
    """
    out = fold_for_inference(modules)
    out["spade_generator"] = FastSPADEDecoder(out["spade_generator"]).eval()
    dense = out["warping_module"].dense_motion_network
    dense.mask = FFTConv3d(dense.mask)
    if dense.occlusion is not None:
        dense.occlusion = FoldConv2d(dense.occlusion)
    for block in dense.hourglass.modules():  # the hourglass's 3×3×3 convolutions
        for name, child in block.named_children():
            if isinstance(child, nn.Conv3d):
                setattr(block, name, fast_conv3d(child))
    return out
