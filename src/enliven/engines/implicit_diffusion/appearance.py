"""HunyuanPortrait's appearance branch: DINOv2 ViT-L/14 with 4 register tokens and ID-aware adapters.

The reference picture (224², ImageNet mean/std) becomes 1 + 4 + 16² = 261 tokens. Six blocks (3, 7, 11, 15,
19, 23 in the release) carry an ID-aware adapter ("IMAdapter"): a down-projection of the normalised tokens,
1×1 / 3×3 / 5×5 convolution branches over the patch grid, cross-attention from the patch tokens to the ArcFace
embedding, an up-projection; ×0.2 it is added to the block's MLP output, before the block's LayerScale.
``ImageProjector`` then mixes the 261 tokens into 64 along the token axis for the UNet's cross-attention.

Parameter names follow the release's ``dino.pth`` / ``image_proj.pth`` so the files load as they are
(``image_proj.pth`` holds the inner Linear's ``weight``/``bias``; ``checkpoints`` prefixes them with
``linear.``). Sizes are constructor arguments; ``checkpoints.RELEASE_SIZES`` has the release's.

Checked against the release's ``encode_image_with_id_features`` and ``ImageProjector`` at a reduced width
(``tools/parity/hunyuan_portrait.py``, ``tests/engines/test_implicit_diffusion_release.py``). ``dino_picture``
does what the release's torchvision preprocessing does (``RandomResizedCrop`` at scale 1 of a square picture
is a bilinear antialiased resize of the whole, then ``Normalize``), checked against torchvision running the
release's transform on a 288² picture (same tool and test).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The release's hard-coded choices (vision_transformer.vit_large and its call in inference.py).
ADAPTER_BLOCKS = (3, 7, 11, 15, 19, 23)
ADAPTER_SCALE = 0.2
# DINOv2's position-embedding interpolation passes scale factors (grid + 0.1) / M rather than an output size;
# bicubic weights depend on the factor, so we pass the same one.
POS_INTERPOLATE_OFFSET = 0.1


class _ConvBN(nn.Module):
    """Conv → BatchNorm (eps 1e-3, running statistics) → ReLU, as the adapter's branches are built."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=True)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _IdentityCrossAttention(nn.Module):
    """Patch tokens (queries) attend to the identity embedding(s) (keys and values) in a narrower space."""

    def __init__(self, image_dim: int, id_dim: int, dim: int, heads: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.image_proj = nn.Linear(image_dim, dim)
        self.id_proj = nn.Linear(id_dim, dim)
        self.back_proj = nn.Linear(dim, image_dim)

    def forward(self, tokens: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        query = self.image_proj(tokens)
        keys = self.id_proj(identity)
        attended, _ = self.multihead_attn(query, keys, keys, need_weights=False)
        return self.back_proj(attended)


class IdentityAdapter(nn.Module):
    """The release's IMAdapter: (B, N, dim) normalised block input and (B, K, 512) identity → (B, N, dim)."""

    def __init__(
        self, dim: int, width: int, prefix_tokens: int, attention_dim: int = 256, heads: int = 8, id_dim: int = 512
    ):
        super().__init__()
        if width % 16:
            raise ValueError(f"the adapter width must be a multiple of 16, not {width}")
        self.prefix_tokens = prefix_tokens  # class token + registers: left out of the convolutions
        narrow, quarter = width // 16, width // 4
        self.D_fc1 = nn.Linear(dim, width)
        self.D_fc2 = nn.Linear(width, dim)
        # half the width from 1×1, a quarter each from the 3×3 and 5×5 paths, so their concatenation is `width`
        self.branch1 = _ConvBN(width, width // 2, 1)
        self.branch2 = nn.Sequential(_ConvBN(width, narrow, 1), _ConvBN(narrow, quarter, 3))
        self.branch3 = nn.Sequential(_ConvBN(width, narrow, 1), _ConvBN(narrow, quarter, 5))
        self.cross_attn = _IdentityCrossAttention(width, id_dim, attention_dim, heads)

    def forward(self, tokens: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        down = F.relu(self.D_fc1(tokens))
        batch, count, width = down.shape
        side = math.isqrt(count - self.prefix_tokens)
        patches = down[:, self.prefix_tokens :]
        grid = patches.transpose(1, 2).reshape(batch, width, side, side)
        mixed = torch.cat([self.branch1(grid), self.branch2(grid), self.branch3(grid)], dim=1)
        mixed = self.cross_attn(mixed.flatten(2).transpose(1, 2), identity)
        return self.D_fc2(torch.cat([down[:, : self.prefix_tokens], mixed], dim=1) + down)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, count, dim = x.shape
        q, k, v = self.qkv(x).view(batch, count, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, count, dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, adapter: IdentityAdapter | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.ls2 = _LayerScale(dim)
        if adapter is not None:
            self.adapter = adapter

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        normed = self.norm2(x)
        out = self.mlp(normed)
        if hasattr(self, "adapter"):
            out = out + ADAPTER_SCALE * self.adapter(normed, identity)
        return x + self.ls2(out)


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)


class AppearanceEncoder(nn.Module):
    """DINOv2 with registers and identity adapters; ``forward(image, identity)`` is the release's
    ``encode_image_with_id_features``: (B, 3, H, W) normalised picture, (B, K, 512) identity →
    (B, 1 + registers + (H/patch)·(W/patch), dim) after the final LayerNorm."""

    def __init__(
        self,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        patch_size: int = 14,
        pos_grid: int = 37,
        register_tokens: int = 4,
        adapter_blocks: tuple[int, ...] = ADAPTER_BLOCKS,
        visual_adapter_dim: int = 384,
        adapter_attention_dim: int = 256,
        adapter_heads: int = 8,
        id_dim: int = 512,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.patch_embed = _PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # learned at pos_grid² patches (the release: 526² pictures, 37²), interpolated to the actual grid
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # a training-time parameter, kept to load strictly
        self.blocks = nn.ModuleList(
            _Block(
                embed_dim,
                num_heads,
                IdentityAdapter(
                    embed_dim, visual_adapter_dim, 1 + register_tokens, adapter_attention_dim, adapter_heads, id_dim
                )
                if i in adapter_blocks
                else None,
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """(1, 1 + rows·cols, dim): the class token's embedding and the patch grid's, bicubically resized."""
        pos = self.pos_embed.float()
        grid = math.isqrt(pos.shape[1] - 1)
        if rows == cols == grid:
            return self.pos_embed
        patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        scale = ((rows + POS_INTERPOLATE_OFFSET) / grid, (cols + POS_INTERPOLATE_OFFSET) / grid)
        patches = F.interpolate(patches, scale_factor=scale, mode="bicubic", antialias=False)
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([pos[:, :1], patches], dim=1).to(self.pos_embed.dtype)

    def forward(self, image: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        rows, cols = image.shape[-2] // self.patch_size, image.shape[-1] // self.patch_size
        tokens = torch.cat([self.cls_token.expand(len(image), -1, -1), self.patch_embed(image)], dim=1)
        tokens = tokens + self.position_embedding(rows, cols)
        # registers go after the class token and get no position embedding
        tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(len(image), -1, -1), tokens[:, 1:]], dim=1)
        identity = identity.to(tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens, identity)
        return self.norm(tokens)


class ImageProjector(nn.Module):
    """261 appearance tokens → 64, a Linear over the token axis: (B, 261, D) → (B, 64, D)."""

    def __init__(self, tokens: int = 261, queries: int = 64):
        super().__init__()
        self.linear = nn.Linear(tokens, queries)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(tokens.transpose(1, 2)).transpose(1, 2)


# The reference picture's normalisation before DINO (the release's preprocessing: ImageNet statistics).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dino_input(picture: torch.Tensor) -> torch.Tensor:
    """(B, 3, 224, 224) RGB in [0, 1] → normalised with ImageNet's mean and std, as the release feeds DINO."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=picture.dtype, device=picture.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=picture.dtype, device=picture.device).view(1, 3, 1, 1)
    return (picture - mean) / std


def dino_picture(picture_uint8) -> torch.Tensor:
    """(H, W, 3) uint8 RGB reference crop (the release's 512² crop) → (1, 3, 224, 224) DINO input, as the release
    makes it: to [0, 1], bilinear resize with antialiasing (torchvision's tensor resize), ImageNet mean/std."""
    picture = torch.as_tensor(picture_uint8).permute(2, 0, 1)[None].float() / 255
    picture = F.interpolate(picture, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    return dino_input(picture)


def encode_appearance(models: dict, image: torch.Tensor, id_features: torch.Tensor) -> torch.Tensor:
    """The release's ``encode_image_with_id_features`` over all blocks: (1, 3, 224, 224) normalised picture
    (see ``dino_input``) and (1, N, 512) ArcFace embedding(s) → (1, 261, D) tokens (before ``image_proj``)."""
    dino = models["dino"]
    weights = next(dino.parameters())
    return dino(image.to(weights), id_features.to(weights))
