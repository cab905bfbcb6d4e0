"""``audio-diffusion`` against Hallo's own code: ``data/audio_diffusion_release.npz``, written by
``tools/parity/hallo.py`` from the release (fudan-generative-vision/hallo, the commit in its ``meta``) at a tiny
random configuration. Our modules at the same sizes and weights (filled by key) must give its outputs: the same
``net.pth`` keys and shapes, modules within 1e-4 of the release's range, the two-clip guided run within 1e-3 (first
clip) and 5e-3 (the clip after it, started from decoded motion frames).
``python tools/parity/compare.py audio-diffusion`` prints the measured figures.
"""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import audio_diffusion_checks as checks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def release():
    return checks.Fixture()


def test_the_fixture_says_where_it_came_from(release):
    assert release.meta["release"] == "fudan-generative-vision/hallo" and len(release.meta["commit"]) == 40
    assert release.meta["diffusers"] == "0.27.2"  # the release's requirements.txt pin
    # the release's configs/inference/default.yaml values
    assert release.sizes["guidance"] == 3.5 and release.sizes["seed"] == 42 and release.sizes["motion_frames"] == 2
    assert int(release["audio_length"]) == 8 and release["run_latents"].shape[0] == 2  # two clips of 4


@pytest.mark.parametrize("name", list(checks.CHECKS))
def test_ours_matches_the_release(release, name):
    check, tolerance, label = checks.CHECKS[name]
    assert check(release) <= tolerance, label


def test_the_checks_can_fail(release):
    """A check sees a change far below its tolerance's scale: one zero convolution's bias in the first audio
    module (the full-picture branch) nudged by 1e-3."""
    import torch

    bias = release.models["denoiser"].down_blocks[0].audio_modules[0].transformer_blocks[0].zero_conv_full.bias
    with torch.no_grad():
        bias[0] += 1e-3
    try:
        assert checks.denoiser_step(release) > checks.MODULE_TOLERANCE
    finally:
        with torch.no_grad():
            bias[0] -= 1e-3


def test_the_release_quirks_matter(release, monkeypatch):
    """Each reproduced quirk changes the result beyond tolerance when undone: the reference tokens' tiling over
    frames (with guidance the conditional video's even frames see the unconditional-context tokens) and their
    rounding to fp16 in an fp32 run."""
    import torch

    from enliven.engines.audio_diffusion.model import TiledReferenceProcessor

    with monkeypatch.context() as patch:
        patch.setattr(TiledReferenceProcessor, "release_tiling", False)
        assert checks.denoiser_step(release) > checks.MODULE_TOLERANCE
    original = torch.Tensor.to

    def keep_fp32(self, *args, **kwargs):
        if args and args[0] is torch.float16:
            return self
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "to", keep_fp32)
        assert checks.denoiser_step(release) > checks.MODULE_TOLERANCE
