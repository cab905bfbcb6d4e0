"""HunyuanPortrait's conditioning modules and the loading of its official layout (CPU, seconds).

Golden values, all independent of our code:
* the release's tensor counts per file and its tensor shapes at full size (counted by loading the release's
  files with its own ``inference.py``, Tencent-Hunyuan/HunyuanPortrait 48bae74), checked on modules built at the
  release's sizes on the meta device;
* the outputs of the release's own modules and its motion-bucket ids: ``test_implicit_diffusion_release.py``
  (fixtures written by ``tools/parity/hunyuan_portrait.py``);
* skimage's ``SimilarityTransform`` + ``warp`` (what the release aligns ArcFace crops with);
* constructed landmark tracks whose spread is known in closed form, for the motion buckets.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from enliven.errors import EnlivenError

pytest.importorskip("diffusers")


from enliven.engines.implicit_diffusion import identity  # noqa: E402
from enliven.engines.implicit_diffusion import implicit_motion as motion  # noqa: E402
from enliven.engines.implicit_diffusion.appearance import (  # noqa: E402
    AppearanceEncoder,
    ImageProjector,
    dino_picture,
    encode_appearance,
)
from enliven.engines.implicit_diffusion.checkpoints import (  # noqa: E402
    _BUILDERS,
    RELEASE_SIZES,
    LoadReport,
    convert_to_safetensors,
    load_official,
)
from enliven.engines.implicit_diffusion.tiny import save_tiny  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The release's files, counted by running it (independent of the widths).
RELEASE_COUNTS = {
    "hyportrait/dino.pth": 638,
    "hyportrait/image_proj.pth": 2,
    "hyportrait/pose_guider.pth": 16,
    "hyportrait/expression.pth": 161,
    "hyportrait/headpose.pth": 62,
    "hyportrait/motion_proj.pth": 95,
    "hyportrait/unet.pth": 1492,
    "vae/diffusion_pytorch_model.fp16.safetensors": 374,
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("hunyuan"), seed=0)


@pytest.fixture(scope="module")
def models(tiny_root):
    torch.manual_seed(123)  # loading must not depend on the global generator: the weights come from the files
    return load_official(tiny_root.parent)


def _copy_layout(root: Path, target: Path) -> Path:
    shutil.copytree(root, target / "pretrained_weights")
    return target / "pretrained_weights"


# ---------------------------------------------------------------- loading


def test_loading_uses_every_tensor_with_the_release_counts(tiny_root, models):
    report = LoadReport()
    load_official(tiny_root, report=report)  # the pretrained_weights/ folder itself works too
    assert report.loaded == RELEASE_COUNTS
    assert all(not v for v in report.missing.values()) and all(not v for v in report.unexpected.values())
    for name, key in (
        ("dino", "blocks.23.adapter.cross_attn.id_proj.weight"),
        ("motion_proj", "connector.latents"),
        ("expression", "resnet50.layer4.2.gn3.weight"),
        ("headpose", "head_pose_net.fc.bias"),
        ("pose_guider", "conv_out.weight"),
        ("unet", "up_blocks.3.attentions.2.temporal_transformer_blocks.0.attn2.processor.to_k_ip.0.weight"),
    ):
        saved = torch.load(tiny_root / "hyportrait" / f"{name}.pth", weights_only=True)
        assert torch.equal(models[name].state_dict()[key], saved[key]), key
    saved = torch.load(tiny_root / "hyportrait" / "image_proj.pth", weights_only=True)
    assert set(saved) == {"weight", "bias"} and torch.equal(models["image_proj"].linear.weight, saved["weight"])
    assert all(not m.training for k, m in models.items() if isinstance(m, torch.nn.Module))
    assert models["scheduler_config"]["use_karras_sigmas"] is True
    assert models["arcface"].get_inputs()[0].shape == [1, 3, 112, 112]


def test_release_sizes_give_the_release_tensor_counts_and_shapes():
    """At the release's sizes (meta device: no memory), our modules have the release's files' keys and shapes."""
    with torch.device("meta"):
        built = {name: builder(**RELEASE_SIZES[name]) for name, builder in _BUILDERS.items()}
    states = {name: module.state_dict() for name, module in built.items()}
    counts = {name: len(state) for name, state in states.items()}
    assert counts == {
        "dino": 638,
        "image_proj": 2,
        "expression": 161,
        "headpose": 62,
        "motion_proj": 95,
        "pose_guider": 16,
    }
    dino, refiner = states["dino"], states["motion_proj"]
    assert dino["pos_embed"].shape == (1, 1370, 1024) and dino["register_tokens"].shape == (1, 4, 1024)
    adapters = sorted({int(k.split(".")[1]) for k in dino if ".adapter." in k})
    assert adapters == [3, 7, 11, 15, 19, 23]
    assert dino["blocks.3.adapter.D_fc1.weight"].shape == (384, 1024)
    assert dino["blocks.3.adapter.cross_attn.id_proj.weight"].shape == (256, 512)
    assert dino["blocks.3.adapter.cross_attn.back_proj.weight"].shape == (384, 256)
    assert states["image_proj"]["linear.weight"].shape == (64, 261)
    assert refiner["position_head.weight"].shape == (128, 768) and refiner["position_exp.weight"].shape == (128, 768)
    assert refiner["connector.latents"].shape == (64, 768)
    assert refiner["connector.proj_in.weight"].shape == (768, 512)
    assert refiner["connector.proj_out.0.weight"].shape == (1018, 768)
    assert refiner["connector.proj_out.1.weight"].shape == (1018,)
    assert states["pose_guider"]["conv_out.weight"].shape[0] == 320
    assert states["expression"]["resnet50.fc.weight"].shape == (512, 2048)
    assert states["headpose"]["head_pose_net.fc.weight"].shape == (6, 512)
    # and the VAE class we build from vae/config.json, at SVD's config, holds the release's 374 tensors
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.device("meta"):
        vae = AutoencoderKLTemporalDecoder(
            down_block_types=["DownEncoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2
        )
    assert len(vae.state_dict()) == 374


def test_sizes_that_do_not_fit_the_files_fail_with_one_line(tiny_root, tmp_path):
    with pytest.raises(EnlivenError) as caught:
        load_official(tiny_root, sizes={"dino": {"embed_dim": 64, "num_heads": 4}})
    message = str(caught.value)
    assert "\n" not in message and "dino.pth" in message and "sizes" in message
    with pytest.raises(EnlivenError, match="no size 'width'"):
        load_official(tiny_root, sizes={"dino": {"width": 64}})
    with pytest.raises(EnlivenError, match="unknown module 'vae'"):
        load_official(tiny_root, sizes={"vae": {}})
    # without its sizes file the tiny folder is read at the release's sizes: refused, naming the first misfit
    bare = _copy_layout(tiny_root, tmp_path)
    (bare / "hyportrait" / "enliven_sizes.json").unlink()
    with pytest.raises(EnlivenError, match=r"hyportrait/dino.pth: .* in the file but .* sizes"):
        load_official(bare)
    # the same folder with the sizes given as an argument loads
    assert load_official(bare, sizes=json.loads((tiny_root / "hyportrait" / "enliven_sizes.json").read_text()))


def test_a_file_with_a_missing_or_extra_tensor_is_refused(tiny_root, tmp_path):
    folder = _copy_layout(tiny_root, tmp_path)
    path = folder / "hyportrait" / "motion_proj.pth"
    state = torch.load(path, weights_only=True)
    state["connector.extra"] = torch.zeros(1)
    del state["connector.latents"]
    torch.save(state, path)
    with pytest.raises(EnlivenError, match="motion_proj.pth does not match .* 1 missing and 1 unexpected"):
        load_official(folder)
    with pytest.raises(EnlivenError, match="does not look like HunyuanPortrait weights"):
        load_official(tmp_path / "nowhere")


def test_safetensors_copies_are_preferred(tiny_root, tmp_path):
    folder = _copy_layout(tiny_root, tmp_path)
    written = convert_to_safetensors(folder.parent)
    assert sorted(p.name for p in written) == sorted(
        f"{n}.safetensors"
        for n in ("dino", "expression", "headpose", "image_proj", "motion_proj", "pose_guider", "unet")
    )
    assert convert_to_safetensors(folder) == []  # nothing left to convert
    for pth in (folder / "hyportrait").glob("*.pth"):
        pth.unlink()  # only the copies are left: they must be what loads
    report = LoadReport()
    loaded = load_official(folder, report=report)
    assert report.loaded["hyportrait/dino.safetensors"] == 638
    assert (folder / "hyportrait" / "unet.safetensors").is_file() and "unet" in loaded


# ---------------------------------------------------------------- module contracts


def test_module_shapes(models):
    with torch.no_grad():
        tokens = encode_appearance(models, torch.randn(1, 3, 224, 224), identity.identity_features(None, None, None))
        assert tokens.shape == (1, 261, 32)
        assert models["image_proj"](tokens).shape == (1, 64, 32)
        guide = models["pose_guider"](torch.zeros(1, 3, 3, 64, 48))
        assert guide.shape == (1, 32, 3, 8, 6)
        assert torch.allclose(guide[:, :, 0], guide[:, :, 2])  # black pictures: one constant map per frame
        crops = torch.rand(3, 3, 256, 256)
        assert models["expression"](crops).shape == (3, 32)
        rotation, translation = models["headpose"](motion.head_pose_input(crops))
        assert rotation.shape == translation.shape == (3, 3)
        assert rotation.abs().max() <= 180 and translation.abs().max() <= 2
        refined = models["motion_proj"](models["expression"](crops), 3, 100)
        assert refined.shape == (3, 64, 26)
        tokens = motion.motion_tokens(models, crops, crops.flip(-1), 3, 100)
    assert tokens.shape == (3, 64, 32)
    assert torch.equal(tokens[..., :26], refined)
    rotation, _ = models["headpose"](motion.head_pose_input(crops.flip(-1)))
    assert torch.equal(tokens[:, 5, 26:29], rotation) and torch.equal(tokens[:, 0, 26:29], tokens[:, 63, 26:29])
    assert not tokens[..., 29:].any()  # the release zeroes the translation
    # the refiner's bucket ids matter (they condition every AdaLN)
    with torch.no_grad():
        other = models["motion_proj"](models["expression"](crops), 3, 101)
    assert not torch.allclose(other, refined)


def test_the_position_embedding_is_resized_as_dinov2_does():
    """Bicubic with DINOv2's (grid + 0.1)/M scale factors; at the learned grid it is used as is."""
    encoder = AppearanceEncoder(embed_dim=8, depth=1, num_heads=2, pos_grid=5, adapter_blocks=())
    with torch.no_grad():
        encoder.pos_embed.copy_(torch.randn(1, 26, 8))
        assert torch.equal(encoder.position_embedding(5, 5), encoder.pos_embed)
        grid = encoder.pos_embed[:, 1:].reshape(1, 5, 5, 8).permute(0, 3, 1, 2)
        expected = torch.nn.functional.interpolate(grid, scale_factor=(3.1 / 5, 4.1 / 5), mode="bicubic")
        resized = encoder.position_embedding(3, 4)
    assert resized.shape == (1, 13, 8) and torch.equal(resized[:, 0], encoder.pos_embed[:, 0])
    assert torch.allclose(resized[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 12, 8))


def test_dino_picture_normalises_with_imagenet_statistics():
    grey = np.full((512, 512, 3), 128, np.uint8)
    picture = dino_picture(grey)
    assert picture.shape == (1, 3, 224, 224)
    expected = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(picture[0, :, 100, 100].numpy(), expected, atol=1e-6)
    assert ImageProjector(tokens=5, queries=2)(torch.zeros(1, 5, 7)).shape == (1, 2, 7)


# ---------------------------------------------------------------- ArcFace alignment and identity


def _similar_points(angle_deg: float, scale: float, shift) -> np.ndarray:
    theta = math.radians(angle_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return (identity.TEMPLATE @ rotation.T) * scale + np.asarray(shift)


def test_alignment_puts_the_five_points_on_the_template():
    points = _similar_points(25.0, 2.7, (140.0, 60.0))
    matrix = identity.similarity_to_template(points)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - identity.TEMPLATE).max() < 1e-9
    # physically: bright dots drawn at the points land on the template's pixels in the crop
    height, width = 420, 400
    ys, xs = np.mgrid[0:height, 0:width]
    picture = np.zeros((height, width, 3), np.uint8)
    for x, y in points:
        picture[..., 1] = np.maximum(picture[..., 1], 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 4.0**2)))
    crop = identity._aligned_float(picture, points)[..., 1]
    cy, cx = np.mgrid[0:112, 0:112]
    for tx, ty in identity.TEMPLATE:
        near = (cx - tx) ** 2 + (cy - ty) ** 2 < 5**2
        weights = crop * near
        centroid = (weights * cx).sum() / weights.sum(), (weights * cy).sum() / weights.sum()
        assert math.dist(centroid, (tx, ty)) < 0.3
    assert identity.aligned_face(picture, points).dtype == np.uint8


@pytest.mark.filterwarnings("ignore:`estimate` is deprecated")  # the release's call, kept as it is
def test_alignment_equals_skimage_as_the_release_uses_it():
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (240, 200, 3), dtype=np.uint8)
    points = _similar_points(-12.0, 1.3, (30.0, 20.0)) + rng.normal(0, 2.0, (5, 2))  # not exactly similar
    estimated = transform.SimilarityTransform()
    estimated.estimate(points, identity.TEMPLATE)
    reference = transform.warp(picture, estimated.inverse, output_shape=(112, 112))
    ours = identity._aligned_float(picture, points)
    assert np.abs(ours - reference).max() < 1e-9
    assert np.allclose(identity.similarity_to_template(points), estimated.params[:2], atol=1e-9)


def test_identity_features_are_unit_length_and_follow_the_face(models, portrait, portrait_face):
    embedding = identity.identity_features(models["arcface"], portrait, portrait_face.landmarks)
    assert embedding.shape == (1, 1, 512) and abs(float(embedding.norm()) - 1) < 1e-5
    moved = identity.identity_features(models["arcface"], np.roll(portrait, 9, axis=1), portrait_face.landmarks)
    assert not torch.allclose(embedding, moved)  # the crop follows the points, not a fixed window
    assert not identity.identity_features(None, portrait, portrait_face.landmarks).any()  # the release's fallback


def test_five_points_of_a_real_face_fit_the_template(portrait_face):
    """Our MediaPipe indices play the release's 5 points: after the best similarity they sit within 8 px (of 112)
    of ArcFace's template for the bundled portrait, whose broad smile lifts and widens the mouth corners (the
    eyes fit within 3 px); swapping the eyes or the mouth corners leaves more than 25 px."""
    points = motion.five_points(portrait_face.landmarks)

    def residual(p):
        matrix = identity.similarity_to_template(p)
        return np.linalg.norm(p @ matrix[:, :2].T + matrix[:, 2] - identity.TEMPLATE, axis=1)

    assert residual(points).max() < 8.0 and residual(points)[:2].max() < 3.0
    assert residual(points[[1, 0, 2, 3, 4]]).max() > 25 and residual(points[[0, 1, 2, 4, 3]]).max() > 25


# ---------------------------------------------------------------- motion buckets and crops


def test_intensity_buckets_on_tracks_of_known_spread():
    base = np.array([[40.0, 40.0], [80.0, 40.0], [60.0, 60.0], [45.0, 85.0], [75.0, 85.0]])
    scale = math.hypot(40.0, 45.0)  # the first frame's nose-centred box: 40 wide, 45 high
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    # a rigid head moving on a circle of radius R: every point, nose included, moves together
    radius = 3.3
    rigid = base[None] + radius * circle[:, None, :]  # the nose's mean is its circle's centre: R away each frame
    head, expression = motion.intensity_buckets(rigid)
    assert head == int(radius / scale * 256) == 14 and expression == 0

    # the head still, the four other points each on a circle of radius r: nose-centred spread 4r/5 per frame
    r = 1.7
    moving = np.repeat(base[None], 24, axis=0)
    moving[:, [0, 1, 3, 4]] += r * circle[:, None, :]
    head, expression = motion.intensity_buckets(moving)
    assert head == 0 and expression == int(4 * r / 5 / scale * 1024) == 23

    huge = moving.copy()
    huge[:, [0, 1, 3, 4]] += 40 * circle[:, None, :]
    assert motion.intensity_buckets(huge)[1] == 127  # clamped to the embedding table
    assert motion.intensity_buckets(np.zeros((5, 5, 2))) == (0, 0)  # no face size: no motion


def test_face_crop_is_square_around_the_points_and_black_outside(portrait, portrait_face):
    crop = motion.face_crop_256(portrait, portrait_face.landmarks)
    assert crop.shape == (3, 256, 256) and 0 <= float(crop.min()) and float(crop.max()) <= 1
    points = motion.five_points(portrait_face.landmarks)
    # a frame with the face half out of the picture: the crop keeps its place, the outside is black
    shift = int(points[:, 0].mean())
    cut = portrait[:, shift:]
    shifted = portrait_face.landmarks.copy()
    shifted[:, 0] -= shift
    half_out = motion.face_crop_256(cut, shifted)
    assert float(half_out[:, :, :60].max()) == 0 and float(half_out[:, :, 200:].mean()) > 0.05
    # a fixed box (the first frame's) is honoured
    box = motion.face_box(portrait_face.landmarks)
    assert torch.equal(
        motion.face_crop_256(portrait, portrait_face.landmarks, portrait_face.landmarks),
        motion.face_crop_from_box(portrait, points, box),
    )
    pose = motion.pose_crop_256(np.full((512, 512, 3), 255, np.uint8))
    assert pose.shape == (3, 256, 256) and float(pose.min()) == 1.0


def test_dtypes_per_module(tiny_root):
    loaded = load_official(tiny_root, dtype={"unet": torch.float16, "dino": torch.bfloat16})
    assert next(loaded["unet"].parameters()).dtype == torch.float16
    assert next(loaded["dino"].parameters()).dtype == torch.bfloat16
    assert next(loaded["vae"].parameters()).dtype == torch.float32  # its file is fp16: cast up
    assert next(loaded["motion_proj"].parameters()).dtype == torch.float32
