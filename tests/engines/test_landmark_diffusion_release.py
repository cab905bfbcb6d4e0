"""``landmark-diffusion`` against Follow-Your-Emoji's own code: ``data/landmark_diffusion_release.npz``, written by
``tools/parity/follow_your_emoji.py`` from the release (mayuelala/FollowYourEmoji, the commit in its ``meta``)
at a tiny random configuration. Our modules at the same sizes and weights (filled by key) must give its outputs:
modules within 1e-4 of the release's range, a whole guided sampling run within 1e-3.
``python tools/parity/compare.py landmark-diffusion`` prints the measured figures.
"""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import landmark_diffusion_checks as checks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def release():
    return checks.Fixture()


def test_the_fixture_says_where_it_came_from(release):
    assert release.meta["release"] == "mayuelala/FollowYourEmoji" and len(release.meta["commit"]) == 40
    assert release.meta["loaded_tensors"] == {"referencenet": 666, "unet": 1276, "lmk_guider": 16}
    assert release.sizes["seed"] == 12580 and release.sizes["guidance"] == 3.5  # the release's infer.py values


@pytest.mark.parametrize("name", list(checks.CHECKS))
def test_ours_matches_the_release(release, name):
    check, tolerance, label = checks.CHECKS[name]
    assert check(release) <= tolerance, label


def test_the_checks_can_fail(release):
    """A check sees a change far below its tolerance's scale: the guider's last bias nudged by 1e-3."""
    import torch

    bias = release.models["guider"].conv_out.bias
    with torch.no_grad():
        bias[0] += 1e-3
    try:
        assert checks.guider(release) > checks.MODULE_TOLERANCE
    finally:
        with torch.no_grad():
            bias[0] -= 1e-3
