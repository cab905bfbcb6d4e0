"""``implicit-diffusion`` against HunyuanPortrait's own code: ``data/implicit_diffusion_release.npz`` (the
conditioning modules, the motion buckets) and ``data/implicit_diffusion_sampling_release.npz`` (two runs of the
release's pipeline loop, one with its options away from their defaults, decoded), written by
``tools/parity/hunyuan_portrait.py`` from the release (Tencent-Hunyuan/HunyuanPortrait, the commit in their
``meta``) at tiny random configurations. Our modules at the same sizes and weights (filled by key) must give its
outputs: modules within 1e-4 of the release's range, whole runs within 1e-3.
``python tools/parity/compare.py implicit-diffusion`` prints the measured figures.
"""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

import implicit_diffusion_checks as checks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def release():
    return checks.Fixture()


def test_the_fixtures_say_where_they_came_from(release):
    assert release.meta["release"] == "Tencent-Hunyuan/HunyuanPortrait" and len(release.meta["commit"]) == 40
    options = release.runs["options"]  # the run that reaches the release's options away from their defaults
    assert options["i2i_noise_strength"] == 0.5 and options["motion_bucket_id"] == 5
    assert options["ip_motion_scale"] == 0.7 and options["fps"] != 12.5 and options["decode_chunk_size"] != 8
    assert options["noise_aug_strength"] == 0.1


@pytest.mark.parametrize("name", list(checks.CHECKS))
def test_ours_matches_the_release(release, name):
    check, tolerance, label = checks.CHECKS[name]
    assert check(release) <= tolerance, label


@pytest.mark.parametrize("change", [dict(i2i_noise_strength=1.0), dict(motion_bucket=0), dict(motion_scale=1.0),
                                    dict(fps=12.5), dict(noise_augmentation=0.0)])
def test_each_option_changes_the_run(release, change):
    """Each option reaches the result: at its default the options run is far from the release's."""
    ours = release.run("options", **change).numpy()
    assert checks.relative(ours, release.sampling["options/latents"]) > 10 * checks.RUN_TOLERANCE


def test_noise_augmentation_reaches_the_latent_every_frame_carries(release):
    """The release encodes the reference twice: plain (the i2i start) and with noise_aug_strength's noise (what
    every frame's input carries). The plain latent in the second place is far from the release's run."""
    from enliven.engines.implicit_diffusion.pipeline import reference_latent

    plain = reference_latent(release.sampler, checks.run_inputs("options")["picture"])
    ours = release.run("options", augmented_latent=plain).numpy()
    assert checks.relative(ours, release.sampling["options/latents"]) > 10 * checks.RUN_TOLERANCE
