"""``--engine implicit-diffusion`` on the shared pipeline, with tiny random weights in the official layout (CPU).

Golden values: ``pipeline.generate`` run on the reference and driving crops the engine used, resized and pasted
back, for every output pixel (within one level); the source picture itself (as the same lossless encoder gives
it back) for every pixel away from the paste mask; the driving clip's frame count; the official
``pretrained_weights/`` layout of the release's README for the download plan.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("onnxruntime")

from enliven import api, engines, weights  # noqa: E402
from enliven.cli import main  # noqa: E402
from enliven.engines.implicit_diffusion import load_official  # noqa: E402
from enliven.engines.implicit_diffusion.checkpoints import weights_root  # noqa: E402
from enliven.engines.implicit_diffusion.tiny import save_tiny  # noqa: E402
from enliven.errors import EnlivenError  # noqa: E402
from enliven.io.video import VideoWriter  # noqa: E402

from conftest import fake_hub_fetch, read_frames, write_still_video  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_hp(tmp_path_factory):
    """The folder holding ``pretrained_weights/`` (what ``--weights`` names)."""
    return save_tiny(tmp_path_factory.mktemp("hp"), seed=0).parent


@pytest.fixture(scope="module")
def models(tiny_hp):
    return load_official(tiny_hp)


@pytest.fixture(scope="module")
def driver(tmp_path_factory, portrait):
    path = tmp_path_factory.mktemp("drv") / "still.mp4"
    write_still_video(path, portrait, frames=3)
    return path


def _paste_mask(job) -> np.ndarray:
    full = np.zeros(job.image.shape[:2])
    paster = job.faces[0].paster
    full[paster.roi] = paster.mask[..., 0]
    return full


def test_cli_animates_a_video_with_the_tiny_weights(tiny_hp, models, driver, portrait_path, portrait, tmp_path,
                                                    capsys):
    out = tmp_path / "out.mp4"
    args = ["animate", str(portrait_path), str(driver), "--engine", "implicit-diffusion", "--weights", str(tiny_hp),
            "-o", str(out), "--steps", "1", "--seed", "5", "--guidance", "2", "--device", "cpu", "--crf", "0", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    frames = read_frames(out)
    assert len(frames) == 3 and frames[0].shape == portrait.shape
    options = dict(engine="implicit-diffusion", engine_options=dict(models=models), progress=False)
    full = _paste_mask(api.prepare_animation(portrait, driver, **options))
    # Lossless H.264 changes a picture only through the RGB → YUV 4:2:0 conversion (2×2 chroma blocks): a few
    # pixels away from the mask, every frame must be the source exactly as the same encoder gives it back.
    far = cv2.dilate((full > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    with VideoWriter(tmp_path / "baseline.mp4", 25, crf=0) as writer:
        writer.write(portrait)
    baseline = read_frames(tmp_path / "baseline.mp4")[0]
    assert far.mean() > 0.5 and max(np.abs(f.astype(int) - baseline)[far].max() for f in frames) == 0
    for frame in frames:  # inside: redrawn (random weights: noise)
        assert np.abs(frame.astype(int) - portrait)[full > 0.99].mean() > 5


def test_motion_without_pixels_is_refused_in_one_line(models, portrait):
    options = dict(engine="implicit-diffusion", engine_options=dict(models=models, steps=1), progress=False)
    with pytest.raises(EnlivenError, match="reads the driver's pixels"):
        list(api.prepare_animation(portrait, "preset:mouth", **options).frames(fps=5))


def test_missing_weights_fail_with_one_line(portrait_path, driver, tmp_path, capsys):
    code = main(["animate", str(portrait_path), str(driver), "--engine", "implicit-diffusion", "--weights",
                 str(tmp_path / "nothing"), "-o", str(tmp_path / "o.mp4"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "hunyuan-portrait" in err and "weights download" in err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("option,value,message", [
    ("steps", 0, "steps must be between 1 and 1000, got 0"),
    ("guidance", -1.0, "guidance must be between 0 and 30"),
    ("seed", -1, "seed must be between 0 and"),
    ("device", "tpu", "device must be auto, cpu or cuda"),
])
def test_options_are_checked_before_any_work(option, value, message):
    with pytest.raises(EnlivenError, match=message):
        engines.create("implicit-diffusion", **{option: value}, models={})


# The three repositories as the Hub lists them (the files that matter, and some that must not be fetched).
FAKE_HUB = {
    "tencent/HunyuanPortrait": ["README.md", *(f"hyportrait/{n}.pth" for n in (
        "dino", "expression", "headpose", "image_proj", "motion_proj", "pose_guider", "unet"))],
    "stabilityai/stable-video-diffusion-img2vid-xt": [
        "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
        "image_encoder/config.json", "svd_xt.safetensors",
    ],
    "FoivosPar/Arc2Face": ["arcface.onnx", "arc2face/config.json", "encoder/pytorch_model.bin"],
}


def test_download_plan_writes_the_official_layout(tmp_path):
    calls = []
    target = weights.download("hunyuan-portrait", tmp_path / "hp", fetch=fake_hub_fetch(FAKE_HUB, calls))
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == sorted("pretrained_weights/" + f for f in [
        "arcface.onnx", "scheduler/scheduler_config.json", "unet/config.json", "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        *(f"hyportrait/{n}.pth" for n in ("dino", "expression", "headpose", "image_proj", "motion_proj",
                                          "pose_guider", "unet")),
    ])
    assert set(calls) == set(FAKE_HUB)
    assert weights_root(target) == target / "pretrained_weights"  # what load_official reads
    assert weights.resolve("hunyuan-portrait", target) == target
    assert main(["engines"]) == 0

    class GatedRepoError(Exception):  # huggingface_hub's, by name
        pass

    def gated(repo_id, allow_patterns, local_dir):
        if repo_id.startswith("stabilityai/"):
            raise GatedRepoError("401 Client Error")
        return fake_hub_fetch(FAKE_HUB)(repo_id, allow_patterns, local_dir)

    with pytest.raises(EnlivenError, match="stable-video-diffusion-img2vid-xt is gated: accept its licence"):
        weights.download("hunyuan-portrait", tmp_path / "gated", fetch=gated)


def test_lost_driver_frames_repeat_the_nearest_seen_one(models, portrait_face):
    """Before the first sighting: the first seen frame; after one: the last seen frame (the tracker marks a lost
    frame ``valid=False`` with no crop). Landmarks land in the crop's pixels (the crop box of the shot's anchor)."""
    from dataclasses import replace

    from enliven.motion.frame import MotionFrame

    engine = engines.create("implicit-diffusion", models=models)
    seen = MotionFrame.from_landmarks(portrait_face.landmarks)
    seen = replace(seen, anchor=seen)
    first = replace(seen, crop=np.full((engine.size, engine.size, 3), 1, np.uint8))
    second = replace(seen, crop=np.full((engine.size, engine.size, 3), 2, np.uint8))
    lost = replace(seen, crop=None).lost()
    out = list(engine.driving_frames((None, f) for f in (lost, first, lost, second)))
    assert [int(f.crop[0, 0, 0]) for f in out] == [1, 1, 1, 2]
    expected = engine.driving_crop.crop(seen.landmarks()).to_crop(seen.landmarks())
    np.testing.assert_allclose(out[0].landmarks, expected)
    assert (out[0].landmarks[:, :2] > 0).all() and (out[0].landmarks[:, :2] < engine.size).all()
    with pytest.raises(EnlivenError, match="never seen"):
        list(engine.driving_frames([(None, lost)]))


def test_kept_motion_gives_the_chunks_motion_tokens(models):
    """What is kept per frame (expression features, pose values, buckets) gives back, for any frames in any order,
    the tokens ``motion.motion_tokens`` makes for their whole chunk."""
    import torch

    from enliven.engines.implicit_diffusion import implicit_motion as motion
    from enliven.engines.implicit_diffusion.pipeline import DrivingMotion

    gen = torch.Generator().manual_seed(0)
    chunks = [(torch.rand(3, 3, 64, 64, generator=gen), torch.rand(3, 3, 64, 64, generator=gen), 5, 40),
              (torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen), 90, 2)]
    kept = DrivingMotion(models)
    for chunk in chunks:
        kept.add_chunk(*chunk)
    whole = torch.cat([motion.motion_tokens(models, *chunk) for chunk in chunks])
    order = [4, 0, 3, 3, 1, 2]
    torch.testing.assert_close(kept.tokens(order), whole[order], rtol=1e-5, atol=1e-5)
    assert len(kept) == 5


def test_inside_the_paste_mask_is_the_pipeline_run_on_the_same_crop(models, driver, portrait, monkeypatch):
    """The engine's glue (source crop resized to the working size, driving crops, lost-face filling, streaming,
    uint8, resize back, paste) against ``generate`` run on the reference and driving crops it used, with the same
    seed and options: each output frame is that run resized and pasted back, within one level of rounding,
    everywhere (not a mean difference, which noise would pass)."""
    from enliven.engines.implicit_diffusion import pipeline
    from enliven.engines.implicit_diffusion.pipeline import generate

    seen = {}
    real = pipeline.generate_stream

    def recording(models_, reference, driving, **kwargs):
        driving = list(driving)
        seen["reference"], seen["driving"], seen["kwargs"] = reference, driving, kwargs
        return real(models_, reference, driving, **kwargs)

    monkeypatch.setattr(pipeline, "generate_stream", recording)
    fast = dict(steps=2, seed=5, guidance=2.0)
    options = dict(engine="implicit-diffusion", engine_options=dict(models=models, **fast), progress=False)
    job = api.prepare_animation(portrait, driver, **options)
    frames = list(job.frames())
    face = job.faces[0]
    size = face.state.crop_image.shape[0]
    work = seen["reference"].shape[0]
    assert size > work  # the crop is larger than the model's 64²: resized down, then the output back up
    # the reference is the source crop at the working size, re-derived here from the crop the job cut
    np.testing.assert_array_equal(seen["reference"], cv2.resize(face.crop.cut(portrait), (work, work),
                                                                interpolation=cv2.INTER_AREA))
    driving = seen["driving"]
    assert len(driving) == len(frames) == 3 and all(d.crop.shape == (work, work, 3) for d in driving)
    run = generate(models, seen["reference"], driving, reference_landmarks=face.state.landmarks[:, :2] * (work / size),
                   steps=fast["steps"], seed=fast["seed"], guidance=(2.0, 2.0))
    worst = 0
    for frame, ours in zip(frames, run):
        picture = np.clip(ours * 255.0 + 0.5, 0, 255).astype(np.uint8)
        expected = face.paster.paste(portrait, cv2.resize(picture, (size, size), interpolation=cv2.INTER_CUBIC))
        worst = max(worst, int(np.abs(frame.astype(int) - expected).max()))
    assert worst <= 1, worst
