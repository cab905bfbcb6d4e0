"""Inference-only rewrites of the LivePortrait modules that keep their outputs (to float rounding).

- Spectral normalisation is a fixed rescaling at inference: divide each weight once, drop the hook.
- BatchNorm after a convolution is an affine map per channel: fold it into the convolution.
- Tensors go channels-last where oneDNN's kernels prefer it.

The source-side caches (F(s), the source keypoints, the compressed source feature and its Gaussians)
live in the engine; see ``KeypointEngine.prepare``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


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
