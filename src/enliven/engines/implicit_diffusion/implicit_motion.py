"""HunyuanPortrait's motion branch: what each driving frame becomes before the UNet sees it.

* ``HeadExpression``: a ResNet-50 (GroupNorm with one group) from a 256² crop of the driving face to 512 values.
* ``HeadPose``: a ResNet-18 (GroupNorm, 32 groups) to 6 values; rotation = 360·σ(r) − 180 degrees, translation =
  4·σ(t) − 2. The release feeds it ``x·2 + 1`` where x is the driving 512² crop resized to 256² in [0, 1], so
  it sees values in [1, 3] (kept: that is what the released weights see at inference), and multiplies the
  translation by 0.
* ``IntensityAwareMotionRefiner``: a Perceiver resampler (64 learned queries, 6 blocks of width 768, 8 heads,
  AdaLN) conditioned on the sum of two learned embeddings of "motion bucket" ids (head, expression, 0–127),
  from the expression feature to 64 tokens × 1018.
* ``motion_tokens``: refiner tokens ‖ rotation (3, degrees) ‖ zero translation (3) = 1024 per token.
* ``PoseGuider``: Follow-Your-Emoji's guider layout with 320 output channels. The release only ever feeds it
  black pictures (its ``get_dwpose`` is a stub), so at inference it adds a constant map after ``conv_in``.
* ``intensity_buckets``: the release's bucket ids from the spread of 5 face points over a chunk of frames.
* ``face_crop_256`` / ``pose_crop_256``: the two driving crops.

Parameter names follow the release's ``expression.pth`` (``resnet50.*``), ``headpose.pth`` (``head_pose_net.*``),
``motion_proj.pth`` and ``pose_guider.pth``. No torchvision: the ResNets are written here.

Checked against the release's own classes and its ``get_head_exp_motion_bucketid`` at reduced sizes (the ResNets
at full size): ``tools/parity/hunyuan_portrait.py``, ``tests/engines/test_implicit_diffusion_release.py``, and so
are the expression crop (``face_crop_from_box`` against the release's ``crop_face_motion`` on a given face box and 5
points) and the head-pose crop's resize (``pose_crop_256`` against torchvision's ``Resize(256)`` of the
release's ``crop_resize_img`` crop); the boxes themselves come from our landmarks, not YOLO-face.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BUCKETS = 128  # motion-bucket ids 0–127 (the refiner's embedding tables)


# ---------------------------------------------------------------- ResNets with GroupNorm


class _BasicBlock(nn.Module):
    """ResNet-18's block; names as in ``headpose.pth`` (``bn*`` are GroupNorms, ``shortcut`` the projection)."""

    def __init__(self, cin: int, planes: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.GroupNorm(groups, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.GroupNorm(groups, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.GroupNorm(groups, planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class _Bottleneck(nn.Module):
    """ResNet-50's block (stride on the 3×3 convolution); names as in ``expression.pth``."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, groups: int):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.gn1 = nn.GroupNorm(groups, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.gn2 = nn.GroupNorm(groups, planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.gn3 = nn.GroupNorm(groups, out)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.GroupNorm(groups, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.gn1(self.conv1(x)))
        out = F.relu(self.gn2(self.conv2(out)))
        out = self.gn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetGN(nn.Module):
    """A standard ResNet (7×7 stem, max-pool, four stages at width ×1, ×2, ×4, ×8, average-pool, Linear) with
    GroupNorm. ``stem_norm`` is the stem normalisation's name in the release's files (``bn1`` or ``gn1``)."""

    def __init__(
        self,
        block: type,
        depths: tuple[int, ...],
        out_dim: int,
        width: int = 64,
        groups: int = 32,
        stem_norm: str = "bn1",
    ):
        super().__init__()
        self.stem_norm = stem_norm
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.add_module(stem_norm, nn.GroupNorm(groups, width))
        expansion = getattr(block, "expansion", 1)
        cin = width
        for stage, depth in enumerate(depths):
            planes = width * 2**stage
            blocks = []
            for i in range(depth):
                blocks.append(block(cin, planes, 2 if (i == 0 and stage > 0) else 1, groups))
                cin = planes * expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, out_dim)
        self.stages = len(depths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(getattr(self, self.stem_norm)(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        for stage in range(self.stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return self.fc(x.mean(dim=(2, 3)))


class HeadExpression(nn.Module):
    """(N, 3, 256, 256) driving-face crops in [0, 1] → (N, out_dim) expression features."""

    def __init__(self, out_dim: int = 512, width: int = 64, groups: int = 1):
        super().__init__()
        self.resnet50 = ResNetGN(_Bottleneck, (3, 4, 6, 3), out_dim, width, groups, stem_norm="gn1")

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.resnet50(crops)


class HeadPose(nn.Module):
    """(N, 3, 256, 256) as the release gives it (``head_pose_input``) → (rotation degrees (N, 3), translation
    (N, 3))."""

    def __init__(self, width: int = 64, groups: int = 32):
        super().__init__()
        self.head_pose_net = ResNetGN(_BasicBlock, (2, 2, 2, 2), 6, width, groups, stem_norm="bn1")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head_pose_net(x)
        return torch.sigmoid(out[:, :3]) * 360 - 180, torch.sigmoid(out[:, 3:]) * 4 - 2


def head_pose_input(pose_crops: torch.Tensor) -> torch.Tensor:
    """What the release really feeds ``HeadPose``: its [0, 1] crop times 2 plus 1 (values in [1, 3])."""
    return pose_crops * 2 + 1


# ---------------------------------------------------------------- intensity-aware motion refiner


class _AdaLayerNorm(nn.Module):
    """LayerNorm without affine, shifted and scaled by a Linear of SiLU(intensity embedding)."""

    def __init__(self, dim: int, intensity_dim: int):
        super().__init__()
        self.linear = nn.Linear(intensity_dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)  # no tensors: named for the parity check

    def forward(self, x: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        shift, scale = self.linear(F.silu(intensity)).view(len(x), 1, -1).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


class _SquaredReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).square()


class _PerceiverBlock(nn.Module):
    def __init__(self, width: int, heads: int, intensity_dim: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("sq_relu", _SquaredReLU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_1 = _AdaLayerNorm(width, intensity_dim)
        self.ln_2 = _AdaLayerNorm(width, intensity_dim)
        self.ln_ff = _AdaLayerNorm(width, intensity_dim)

    def forward(self, features: torch.Tensor, latents: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        queries = self.ln_1(latents, intensity)
        context = torch.cat([queries, self.ln_2(features, intensity)], dim=1)  # the queries see themselves too
        latents = latents + self.attn(queries, context, context, need_weights=False)[0]
        return latents + self.mlp(self.ln_ff(latents, intensity))


class _Resampler(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, queries: int, input_dim: int, output_dim: int, intensity_dim: int
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(queries, width) * width**-0.5)
        self.intensity_aware_linear = nn.Linear(intensity_dim, width)
        self.proj_in = nn.Linear(input_dim, width)
        self.perceiver_blocks = nn.Sequential(*(_PerceiverBlock(width, heads, intensity_dim) for _ in range(layers)))
        self.proj_out = nn.Sequential(nn.Linear(width, output_dim), nn.LayerNorm(output_dim))

    def forward(self, features: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(len(features), -1, -1) + self.intensity_aware_linear(F.silu(intensity))
        features = self.proj_in(features)
        for block in self.perceiver_blocks:
            latents = block(features, latents, intensity)
        return self.proj_out(latents)


class IntensityAwareMotionRefiner(nn.Module):
    """``(features (T, input_dim), head_id, exp_id) → (T, queries, output_dim)``: one frame's feature is a single
    key/value token beside the queries; both ids (ints or 1-element tensors, one pair per chunk of frames, as
    the release calls it) select embeddings whose sum conditions every AdaLN."""

    def __init__(
        self,
        input_dim: int = 512,
        output_dim: int = 1018,
        num_queries: int = 64,
        intensity_embed_dim: int = 768,
        width: int = 768,
        layers: int = 6,
        heads: int = 8,
        buckets: int = BUCKETS,
    ):
        super().__init__()
        self.position_head = nn.Embedding(buckets, intensity_embed_dim)
        self.position_exp = nn.Embedding(buckets, intensity_embed_dim)
        self.connector = _Resampler(width, layers, heads, num_queries, input_dim, output_dim, intensity_embed_dim)

    def forward(self, features: torch.Tensor, head_id, exp_id) -> torch.Tensor:
        ids = self.position_head.weight.device
        head = torch.as_tensor(head_id, device=ids).long().reshape(-1)[:1]
        exp = torch.as_tensor(exp_id, device=ids).long().reshape(-1)[:1]
        intensity = (self.position_head(head) + self.position_exp(exp)).to(features.dtype)
        intensity = intensity.view(1, 1, -1).expand(len(features), -1, -1)
        return self.connector(features[:, None, :], intensity)


class PoseGuider(nn.Module):
    """The release's pose guider, Follow-Your-Emoji's layout: ``conv_in`` 3 → widths[0]; per step to the next
    width a 3×3 conv and a stride-2 3×3 conv (``blocks.0``, ``blocks.1``, …); SiLU after every conv but the
    last; ``conv_out`` to ``channels`` (the UNet's first width). Each frame on its own:
    (B, 3, F, H, W) → (B, channels, F, H/8, W/8). The release feeds it black pictures."""

    def __init__(self, channels: int = 320, widths: tuple[int, ...] = (16, 32, 96, 256)):
        super().__init__()
        widths = tuple(widths)
        self.conv_in = nn.Conv2d(3, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for narrow, wide in zip(widths, widths[1:]):
            self.blocks.append(nn.Conv2d(narrow, narrow, 3, padding=1))
            self.blocks.append(nn.Conv2d(narrow, wide, 3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(widths[-1], channels, 3, padding=1)

    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        videos, _, frames = pictures.shape[:3]
        x = F.silu(self.conv_in(pictures.transpose(1, 2).flatten(0, 1)))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.conv_out(x)
        return x.unflatten(0, (videos, frames)).transpose(1, 2)


def motion_tokens(
    models: dict, face_crops: torch.Tensor, pose_crops: torch.Tensor, head_id: int, exp_id: int
) -> torch.Tensor:
    """One chunk of driving frames → (T, queries, output_dim + 6) motion tokens, as the release builds them.

    ``face_crops``: (T, 3, 256, 256) in [0, 1] from ``face_crop_256`` (for the expression encoder);
    ``pose_crops``: (T, 3, 256, 256) in [0, 1] from ``pose_crop_256`` (the head-pose encoder gets ``x·2 + 1``);
    ``head_id``, ``exp_id``: the chunk's ``intensity_buckets``. Each token is the refiner's output ‖ the
    rotation in degrees ‖ the translation × 0 (the release zeroes it).
    """
    expression, headpose, refiner = models["expression"], models["headpose"], models["motion_proj"]
    weights = next(expression.parameters())
    features = expression(face_crops.to(weights))
    tokens = refiner(features.to(next(refiner.parameters())), head_id, exp_id)
    rotation, translation = headpose(head_pose_input(pose_crops.to(next(headpose.parameters()))))
    pose = torch.cat([rotation, translation * 0], dim=-1).to(tokens.dtype)
    return torch.cat([tokens, pose[:, None, :].expand(-1, tokens.shape[1], -1)], dim=-1)


# ---------------------------------------------------------------- driving-frame measurements and crops

# Five points from our MediaPipe 478-point landmarks standing in for the release's YOLOv5-face points, in the
# same order (image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner for
# a frontal face; "right"/"left" below are the subject's, whose right eye is on the image's left):
# iris centres 468 / 473 (YOLO-face, trained on RetinaFace-style annotations, marks the eye centre, which is
# the pupil for an open eye), nose tip 1, mouth corners 61 / 291. Differences: YOLO's points come from a
# detector with its own jitter and bias (its "eye" is a box-regressed point, ours follows the iris, so gaze
# moves it a little); both are normalised by the face size wherever the release uses them.
FIVE_POINTS = (468, 473, 1, 61, 291)
NOSE = 2  # index of the nose tip among the five


def five_points(landmarks) -> np.ndarray:
    """(478, ≥2) MediaPipe landmarks in pixels → (5, 2) points in the release's order (see ``FIVE_POINTS``)."""
    points = np.asarray(landmarks, np.float64)
    if points.ndim != 2 or points.shape[0] < 478 or points.shape[1] < 2:
        raise ValueError(f"need (478, 2+) landmarks with irises, got shape {points.shape}")
    return points[list(FIVE_POINTS), :2].copy()


def intensity_buckets(points5, max_value: int = BUCKETS - 1) -> tuple[int, int]:
    """The release's (head, expression) motion-bucket ids of one chunk of frames, from (T, 5, 2) points.

    Scale: the diagonal of the chunk's first frame's nose-centred 5-point box. Expression: the mean over
    frames and points of each nose-centred point's distance to its mean over the chunk, / scale · 1024.
    Head: the mean distance of the nose to its mean, / scale · 256. Both truncated to ints and clamped to
    [0, max_value]. A chunk whose first frame has all points at one spot (no face size) gives (0, 0).
    """
    points = np.asarray(points5, np.float64)
    centred = points - points[:, NOSE : NOSE + 1]
    first = centred[0]
    scale = float(np.sqrt(((first.max(0) - first.min(0)) ** 2).sum()))
    if not scale > 0:
        return 0, 0
    expression = np.sqrt(((centred - centred.mean(0)) ** 2).sum(2)).mean() / scale * 1024
    nose = points[:, NOSE]
    head = np.sqrt(((nose - nose.mean(0)) ** 2).sum(1)).mean() / scale * 256
    return (min(max(int(head), 0), max_value), min(max(int(expression), 0), max_value))


def face_box(landmarks) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the 468 mesh points: our stand-in for the release's YOLO face box (forehead to chin,
    cheek to cheek; YOLO-face's box reaches a little higher on the forehead and wider at the ears)."""
    mesh = np.asarray(landmarks, np.float64)[:468, :2]
    return (*mesh.min(0), *mesh.max(0))


def _resize_256(picture_uint8: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 square → (3, 256, 256) in [0, 1]: PIL's bilinear resize, as torchvision's ``Resize(256)``
    does on the release's PIL pictures."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(np.ascontiguousarray(picture_uint8)).resize((256, 256), Image.BILINEAR))
    return torch.from_numpy(resized.copy()).permute(2, 0, 1).float() / 255


def face_crop_256(frame_uint8: np.ndarray, landmarks, box_landmarks=None) -> torch.Tensor:
    """The expression encoder's input for one driving frame: (3, 256, 256) in [0, 1] (``face_crop_from_box`` of
    the frame's ``five_points`` and a face box). The release's face box is the *first* driving frame's YOLO box
    for every frame; pass the first frame's landmarks as ``box_landmarks`` to do the same (default: this
    frame's). Our box is ``face_box`` of the mesh, not YOLO's, so the crop is about the same size and place but
    not the same pixels."""
    box = face_box(landmarks if box_landmarks is None else box_landmarks)
    return face_crop_from_box(frame_uint8, five_points(landmarks), box)


def face_crop_from_box(frame_uint8: np.ndarray, points5, box, reach: float = 0.45) -> torch.Tensor:
    """The release's driving-face crop: the box of the 5 points pushed out toward the face ``box`` (x0, y0, x1,
    y1) by ``reach`` of the gap on each side; a square of the larger side (integer half-side) about its integer
    centre, black outside the frame, resized to 256² (PIL bilinear) → (3, 256, 256) in [0, 1]."""
    points = np.asarray(points5, np.float64)
    bx0, by0, bx1, by1 = box
    (px0, py0), (px1, py1) = points.min(0), points.max(0)
    x0, x1 = px0 - (px0 - bx0) * reach, px1 + (bx1 - px1) * reach
    y0, y1 = py0 - (py0 - by0) * reach, py1 + (by1 - py1) * reach
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    half = int(max(x1 - x0, y1 - y0)) // 2
    if half < 1:
        raise ValueError("the face is too small to crop")
    frame = np.asarray(frame_uint8)
    height, width = frame.shape[:2]
    crop = np.zeros((2 * half, 2 * half, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(cx - half, 0), max(cy - half, 0), min(cx + half, width), min(cy + half, height)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - (cy - half) : sy1 - (cy - half), sx0 - (cx - half) : sx1 - (cx - half)] = frame[sy0:sy1, sx0:sx1]
    return _resize_256(crop)


def pose_crop_256(driving_crop_uint8: np.ndarray) -> torch.Tensor:
    """The head-pose encoder's picture: the driving frame's square head-and-shoulders crop (the release's
    512² crop, the same box as the output's) resized to 256², (3, 256, 256) in [0, 1]."""
    return _resize_256(driving_crop_uint8)
