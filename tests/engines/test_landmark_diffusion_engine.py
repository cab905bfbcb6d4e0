"""``--engine landmark-diffusion`` on the shared pipeline, with tiny random weights in the official layout (CPU).

Golden values: the whole-clip ``generate`` (the colleague's path, 2.4e-6 from the release) for the streamed
sampling; the source picture itself for every pixel outside the paste mask; frame counts from the preset's
documented duration (2 s for ``mouth``) times the asked frame rate; the official file layout
(the release's configs/infer.yaml paths) for the download plan; the loaded tensors before conversion for
``convert_to_safetensors``.
"""

from __future__ import annotations

import shutil
import time

import av
import cv2
import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from enliven import api, engines, weights  # noqa: E402
from enliven.cli import main  # noqa: E402
from enliven.engines.landmark_diffusion import convert_to_safetensors, load_official  # noqa: E402
from enliven.engines.landmark_diffusion.checkpoints import LoadReport, weights_root  # noqa: E402
from enliven.engines.landmark_diffusion.pipeline import (  # noqa: E402
    Context,
    clip_noise,
    generate,
    generate_stream,
    stream_lookahead,
)
from enliven.engines.landmark_diffusion.tiny import save_tiny_official  # noqa: E402
from enliven.errors import EnlivenError  # noqa: E402
from enliven.face.analyzer import FaceAnalyzer  # noqa: E402
from enliven.io.video import VideoWriter  # noqa: E402
from enliven.motion.template import save_template  # noqa: E402

from conftest import fake_hub_fetch, read_frames, write_still_video  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64
FAST = dict(steps=2, seed=5)


@pytest.fixture(scope="module")
def tiny_fye(tmp_path_factory):
    """The folder holding ``pretrained_models/`` (what ``--weights`` names)."""
    return save_tiny_official(tmp_path_factory.mktemp("fye"), seed=0).parent


@pytest.fixture(scope="module")
def models(tiny_fye):
    return load_official(tiny_fye)


def _pictures(frames: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    landmarks = np.zeros((frames, SIZE, SIZE, 3), np.uint8)
    for f in range(frames):  # a moving bar: each frame's condition differs
        landmarks[f, 20:26, 5 + 2 * f:25 + 2 * f] = (180, 200, 10)
    return reference, landmarks


@pytest.mark.parametrize("frames", [3, 12])
def test_stream_gives_the_whole_clip_frames_with_a_bounded_look_ahead(models, frames):
    reference, landmarks = _pictures(frames)
    context = Context(window=4, overlap=1)  # 12 frames: keyframes 0, 3, 6, 9 then 9, 11: two segments
    reads, ahead = [0], []

    def counted():
        for picture in landmarks:
            reads[0] += 1
            yield picture

    streamed = []
    for frame in generate_stream(models, reference, counted(), context=context, **FAST):
        ahead.append(reads[0] - len(streamed))  # read, but not yet given out
        streamed.append(frame)
    whole = generate(models, reference, landmarks, steps=2, context=context,
                     latents=clip_noise(FAST["seed"], frames, (SIZE // 8, SIZE // 8)))
    assert len(streamed) == frames
    np.testing.assert_allclose(np.stack(streamed), whole, atol=1e-5)
    limit = stream_lookahead(context)
    assert limit == 10 and max(ahead) <= limit  # (window − 1) · stride + 1 = 3 · 3 + 1
    if frames == 12:  # it did not read the whole clip before giving out its first frame
        assert ahead[0] < frames


def _paste_mask(job) -> np.ndarray:
    full = np.zeros(job.image.shape[:2])
    paster = job.faces[0].paster
    full[paster.roi] = paster.mask[..., 0]
    return full


def test_preset_frames_are_pasted_back_and_seeded(models, portrait):
    options = dict(engine="landmark-diffusion", engine_options=dict(models=models, **FAST), progress=False)
    job = api.prepare_animation(portrait, "preset:mouth", **options)
    frames = list(job.frames(fps=5))
    assert len(frames) == 10  # the mouth preset lasts 2 s
    mask = _paste_mask(job)
    for frame in frames:  # outside the mask: the source, bit for bit; inside: redrawn
        assert np.array_equal(frame[mask == 0], portrait[mask == 0])
        assert np.abs(frame.astype(int) - portrait)[mask > 0.99].mean() > 5
    again = list(api.prepare_animation(portrait, "preset:mouth", **options).frames(fps=5))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))  # same seed, same frames
    other = dict(options, engine_options=dict(models=models, steps=2, seed=6))
    changed = list(api.prepare_animation(portrait, "preset:mouth", **other).frames(fps=5))
    assert np.abs(changed[0].astype(int) - frames[0]).max() > 10


def test_cli_animates_with_the_tiny_weights(tiny_fye, models, portrait_path, portrait, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    started = time.perf_counter()
    args = ["animate", str(portrait_path), "preset:mouth", "--engine", "landmark-diffusion", "--weights",
            str(tiny_fye), "-o", str(out), "--steps", "2", "--seed", "5", "--guidance", "3.5", "--device", "cpu",
            "--fps", "5", "--crf", "0", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    seconds = time.perf_counter() - started
    frames = read_frames(out)
    assert len(frames) == 10
    # the same crop and mask as the run: the pipeline's own set-up, with the loaded modules
    options = dict(engine="landmark-diffusion", engine_options=dict(models=models), progress=False)
    full = _paste_mask(api.prepare_animation(portrait, "preset:mouth", **options))
    # Written losslessly (crf 0), H.264 changes the picture only through the RGB → YUV 4:2:0 conversion, which
    # is local (2×2 chroma blocks): away from the mask by a few pixels, each frame must be exactly the source
    # as the same encoder gives it back on its own.
    far = cv2.dilate((full > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    with VideoWriter(tmp_path / "baseline.mp4", 5, crf=0) as writer:
        writer.write(portrait)
    baseline = read_frames(tmp_path / "baseline.mp4")[0]
    worst = max(np.abs(frame.astype(int) - baseline)[far].max() for frame in frames)
    assert worst == 0
    for frame in frames:
        assert np.abs(frame.astype(int) - portrait)[full > 0.99].mean() > 5
    print(f"end-to-end {seconds:.1f} s for {len(frames)} frames, max difference outside the mask {worst}")


def test_driving_video_template_and_image(models, portrait_path, portrait, tmp_path):
    options = dict(engine="landmark-diffusion", engine_options=dict(models=models, **FAST), progress=False)
    video = tmp_path / "still.mp4"
    write_still_video(video, portrait, frames=4)
    result = api.animate(portrait_path, video, tmp_path / "v.mp4", **options)
    assert result.frames == len(read_frames(tmp_path / "v.mp4")) == 4
    template = tmp_path / "mouth.npz"
    save_template(template, api.open_driving("preset:mouth"))
    result = api.animate(portrait_path, template, tmp_path / "t.mp4", fps=5, **options)
    assert result.frames == len(read_frames(tmp_path / "t.mp4")) == 10
    still = tmp_path / "still.png"
    result = api.animate(portrait_path, portrait_path, still, **options)
    picture = np.asarray(Image.open(still).convert("RGB"))
    job = api.prepare_animation(portrait, portrait_path, **options)
    mask = _paste_mask(job)
    assert result.frames == 1 and np.array_equal(picture[mask == 0], portrait[mask == 0])
    assert np.abs(picture.astype(int) - portrait)[mask > 0.99].mean() > 5
    with pytest.raises(EnlivenError, match="animates still pictures"):
        api.animate(video, "preset:mouth", tmp_path / "x.mp4", **options)


def test_video_source_is_refused_before_the_weights_load(portrait, tmp_path):
    """A windowed engine cannot re-animate a video source; saying so must not wait for (or need) its weights."""
    video = tmp_path / "source.mp4"
    write_still_video(video, portrait, frames=2)
    with pytest.raises(EnlivenError, match="animates still pictures"):
        api.animate(video, "preset:mouth", tmp_path / "x.mp4", engine="landmark-diffusion",
                    weights=tmp_path / "no-weights-here", progress=False)
    assert not (tmp_path / "x.mp4").exists()


def test_audio_drives_it_and_the_sound_is_kept(models, portrait_path, tmp_path):
    """Audio goes through the shared motion path: one frame per 1/25 s of sound, the sound muxed in, and the
    mouth of the landmark pictures the engine is given follows the loudness (silence, then a tone)."""
    rate, seconds = 16000, 1.2
    t = np.arange(int(seconds * rate)) / rate
    signal = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.6)).astype(np.float32)
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(signal[None], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    options = dict(engine="landmark-diffusion", engine_options=dict(models=models, **FAST), progress=False)
    job = api.prepare_animation(api.read_image(portrait_path), wav, str(portrait_path), **options)
    face = job.faces[0]
    # the inner-lip gap (points 13 and 14) of the targets the engine is given, in crop pixels
    gaps = [np.linalg.norm(t[13, :2] - t[14, :2]) for t in (face.aligner(frame) for frame in face.motion)]
    result = api.animate(portrait_path, wav, tmp_path / "a.mp4", **options)
    assert result.frames == len(read_frames(tmp_path / "a.mp4")) == len(gaps) == 30
    with av.open(str(tmp_path / "a.mp4")) as container:
        assert container.streams.audio
    assert np.mean(gaps[18:]) > np.mean(gaps[:12]) + 1.0, "the mouth opens while the tone sounds"


def test_every_face_of_a_group_picture_is_redrawn(models, portrait, tmp_path):
    """Two faces, ``all_faces``: each gets its own reference, stream and paste-back; far from both, the picture
    is the original (up to the video codec's loss)."""
    from test_pipeline import _two_face_picture

    group = _two_face_picture(portrait)
    Image.fromarray(group).save(tmp_path / "group.png")
    options = dict(engine="landmark-diffusion", engine_options=dict(models=models, **FAST), progress=False)
    result = api.animate(tmp_path / "group.png", "preset:mouth", tmp_path / "g.mp4", all_faces=True, fps=2, **options)
    frames = read_frames(tmp_path / "g.mp4")
    assert result.faces == 2 and len(frames) == result.frames == 4
    with FaceAnalyzer(static=True, max_faces=4) as analyzer:
        boxes = sorted((f.box for f in analyzer.detect(group)), key=lambda b: b[0])
    assert len(boxes) == 2
    for frame in frames:
        changed = np.abs(frame.astype(int) - group).sum(-1)
        for x0, y0, x1, y1 in (np.asarray(b, int) for b in boxes):
            cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 4
            assert changed[cy - r:cy + r, cx - r:cx + r].mean() > 15, "each face is redrawn (random weights: noise)"
        below = max(int(b[3]) for b in boxes) + int(max(b[2] - b[0] for b in boxes))  # well past both crops
        assert below < group.shape[0] and changed[below:].mean() < 2


@pytest.mark.parametrize("option,value,message", [
    ("steps", 0, "steps must be between 1 and 1000, got 0"),
    ("steps", 2.5, "steps must be a whole number"),
    ("guidance", float("nan"), "guidance must be a finite number"),
    ("guidance", -1.0, "guidance must be between 0 and 30"),
    ("seed", -1, "seed must be between 0 and"),
    ("device", "tpu", "device must be auto, cpu or cuda"),
])
def test_options_are_checked_before_any_work(option, value, message):
    with pytest.raises(EnlivenError, match=message):
        engines.create("landmark-diffusion", **{option: value}, models={})


def test_cli_option_errors_are_one_line(portrait_path, tmp_path, capsys):
    code = main(["animate", str(portrait_path), "preset:mouth", "--engine", "landmark-diffusion", "--steps", "0",
                 "-o", str(tmp_path / "o.mp4"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "enliven: error: steps must be between 1 and 1000, got 0"
    if not torch.cuda.is_available():
        with pytest.raises(EnlivenError, match="no CUDA GPU"):
            engines.create("landmark-diffusion", device="cuda", models={})
    assert main(["engines"]) == 0
    listed = capsys.readouterr().out
    assert "landmark-diffusion" in listed and "follow-your-emoji" in listed and "enliven[diffusion]" in listed


# The four repositories as the Hub lists them (the files that matter, and some that must not be fetched).
FAKE_HUB = {
    "YueMafighting/FollowYourEmoji": ["README.md", "ckpts/lmk_guider.pth", "ckpts/referencenet.pth", "ckpts/unet.pth"],
    "lambdalabs/sd-image-variations-diffusers": [
        "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin", "image_encoder/config.json",
        "image_encoder/pytorch_model.bin", "vae/diffusion_pytorch_model.bin", "safety_checker/pytorch_model.bin",
    ],
    "stabilityai/sd-vae-ft-mse": ["config.json", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors"],
    "guoyww/animatediff": ["mm_sd_v14.ckpt", "mm_sd_v15.ckpt", "mm_sd_v15_v2.ckpt"],
}


def test_download_plan_writes_the_official_layout(tmp_path):
    target = weights.download("follow-your-emoji", tmp_path / "fye", fetch=fake_hub_fetch(FAKE_HUB))
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    root = "pretrained_models/"
    assert files == sorted(root + f for f in [
        "AnimateDiff/mm_sd_v15_v2.ckpt",
        "follow-your-emoji/lmk_guider.pth", "follow-your-emoji/referencenet.pth", "follow-your-emoji/unet.pth",
        "sd-image-variations-diffusers/image_encoder/config.json",
        "sd-image-variations-diffusers/image_encoder/pytorch_model.bin",
        "sd-image-variations-diffusers/unet/config.json",
        "sd-image-variations-diffusers/unet/diffusion_pytorch_model.bin",
        "sd-vae-ft-mse/config.json", "sd-vae-ft-mse/diffusion_pytorch_model.safetensors",  # safetensors when offered
    ])
    assert (target / root / "follow-your-emoji/unet.pth").read_text() == "YueMafighting/FollowYourEmoji/ckpts/unet.pth"
    assert weights_root(target) == target / "pretrained_models"  # what load_official reads
    assert weights.resolve("follow-your-emoji", target) == target
    missing = {**FAKE_HUB, "guoyww/animatediff": ["mm_sd_v15.ckpt"]}
    with pytest.raises(EnlivenError, match="guoyww/animatediff has none of mm_sd_v15_v2.ckpt"):
        weights.download("follow-your-emoji", tmp_path / "other", fetch=fake_hub_fetch(missing))

    def offline(repo_id, allow_patterns, local_dir):
        raise OSError("no network")

    with pytest.raises(EnlivenError, match="could not download YueMafighting/FollowYourEmoji .* are you online"):
        weights.download("follow-your-emoji", tmp_path / "third", fetch=offline)


def test_convert_to_safetensors_loads_identically(tiny_fye, models, tmp_path, capsys):
    copy = tmp_path / "w"
    shutil.copytree(tiny_fye, copy)
    assert main(["weights", "convert", str(copy), "-q"]) == 0
    written = {p.name for p in (copy / "pretrained_models").rglob("*.safetensors")}
    assert {"unet.safetensors", "referencenet.safetensors", "lmk_guider.safetensors",
            "mm_sd_v15_v2.safetensors"} <= written
    assert convert_to_safetensors(copy) == []  # nothing left to convert
    for pickle in (copy / "pretrained_models").rglob("*.pth"):  # the copies alone must be enough
        pickle.unlink()
    (copy / "pretrained_models" / "AnimateDiff" / "mm_sd_v15_v2.ckpt").unlink()
    report = LoadReport()
    converted = load_official(copy, report=report)
    assert any(name.endswith("unet.safetensors") for name in report.loaded)
    assert report.loaded == {k.replace(".pth", ".safetensors").replace(".ckpt", ".safetensors"): v
                             for k, v in _report(tiny_fye).loaded.items()}
    for name, module in models.items():
        theirs = converted[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, theirs[key]), (name, key)


def _report(folder) -> LoadReport:
    report = LoadReport()
    load_official(folder, report=report)
    return report


def test_inside_the_paste_mask_is_the_pipeline_run_on_the_same_crop(models, portrait, monkeypatch):
    """The engine's glue (crop, landmark pictures, streaming, uint8, resize, paste) against ``generate`` run on the
    reference and landmark pictures it used, with the same per-frame noise: each output frame is that run pasted
    back, within one level of rounding, everywhere (not a mean difference, which noise would pass)."""
    from enliven.engines.landmark_diffusion import pipeline

    seen = {}
    real = pipeline.generate_stream

    def recording(models_, reference, items, *, draw, **kwargs):
        items = list(items)
        seen["reference"], seen["kwargs"], seen["drawn"] = reference, kwargs, [draw(item) for item in items]
        return real(models_, reference, items, draw=draw, **kwargs)

    monkeypatch.setattr(pipeline, "generate_stream", recording)
    options = dict(engine="landmark-diffusion", engine_options=dict(models=models, **FAST), progress=False)
    job = api.prepare_animation(portrait, "preset:mouth", **options)
    frames = list(job.frames(fps=5))
    reference, pictures = seen["reference"], np.stack(seen["drawn"])
    assert len(pictures) == len(frames) == 10 and seen["kwargs"]["seed"] == FAST["seed"]
    latent = (reference.shape[0] // 8, reference.shape[1] // 8)
    run = generate(models, reference, pictures, steps=FAST["steps"], context=seen["kwargs"]["context"],
                   latents=clip_noise(FAST["seed"], len(pictures), latent))
    face = job.faces[0]
    size = face.state.crop_image.shape[0]
    assert size > reference.shape[0]  # the crop is larger than the model's 64²: resized up, as the engine does
    worst = 0
    for frame, ours in zip(frames, run):
        picture = np.clip(ours * 255.0 + 0.5, 0, 255).astype(np.uint8)
        expected = face.paster.paste(portrait, cv2.resize(picture, (size, size), interpolation=cv2.INTER_CUBIC))
        worst = max(worst, int(np.abs(frame.astype(int) - expected).max()))
    assert worst <= 1, worst
