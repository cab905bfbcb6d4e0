"""LivePortrait networks: official structure (parameter counts, state-dict keys), strict checkpoint loading."""

from __future__ import annotations

import re

import pytest
import torch

from enliven.engines.keypoint import (
    build_modules,
    convert_to_safetensors,
    load_official,
    random_modules,
    save_official,
    tiny_config,
)
from enliven.errors import EnlivenError


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return build_modules()


# Parameter counts published in LivePortrait's speed table (assets/docs/speed.md), in millions.
@pytest.mark.parametrize(
    "names,millions",
    [
        (["appearance_feature_extractor"], 0.84),
        (["motion_extractor"], 28.12),
        (["warping_module"], 45.53),
        (["spade_generator"], 55.37),
        (["stitching", "retarget_eye", "retarget_lip"], 0.23),
    ],
)
def test_parameter_counts_match_the_official_table(official, names, millions):
    count = sum(p.numel() for n in names for p in official[n].parameters())
    assert round(count / 1e6, 2) == millions


def _key_patterns(module) -> set[str]:
    return {re.sub(r"\.\d+\.", ".N.", k) for k in module.state_dict()}


def test_state_dict_keys_follow_the_official_names(official):
    f = set(official["appearance_feature_extractor"].state_dict())
    expected_f = {f"first.{m}.{p}" for m, p in [("conv", "weight"), ("conv", "bias")]}
    expected_f |= {f"first.norm.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert expected_f <= f
    assert {"second.weight", "second.bias"} <= f
    assert {f"resblocks_3d.3dr{i}.conv1.weight" for i in range(6)} <= f
    assert "down_blocks.1.norm.running_var" in f

    m = set(official["motion_extractor"].state_dict())
    assert {"detector.downsample_layers.0.0.weight", "detector.downsample_layers.0.1.weight"} <= m
    assert {"detector.downsample_layers.3.0.weight", "detector.downsample_layers.3.1.weight"} <= m
    assert {"detector.stages.2.8.grn.gamma", "detector.stages.2.8.pwconv2.bias", "detector.norm.weight"} <= m
    assert {f"detector.fc_{h}.weight" for h in ("kp", "scale", "pitch", "yaw", "roll", "t", "exp")} <= m
    assert official["motion_extractor"].state_dict()["detector.fc_yaw.weight"].shape == (66, 768)

    w = official["warping_module"].state_dict()
    assert w["dense_motion_network.compress.weight"].shape == (4, 32, 1, 1, 1)
    assert w["dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight"].shape[:2] == (64, 110)
    assert w["dense_motion_network.hourglass.decoder.up_blocks.4.conv.weight"].shape[:2] == (32, 128)
    assert w["dense_motion_network.hourglass.decoder.conv.weight"].shape[:2] == (142, 142)
    assert w["dense_motion_network.mask.weight"].shape == (22, 142, 7, 7, 7)
    assert w["dense_motion_network.occlusion.weight"].shape == (1, 2272, 7, 7)
    assert w["third.conv.weight"].shape == (256, 512, 3, 3) and w["fourth.weight"].shape == (256, 256, 1, 1)

    g = official["spade_generator"].state_dict()
    assert {"G_middle_0.conv_0.weight_orig", "G_middle_0.conv_0.weight_u", "G_middle_0.conv_0.weight_v"} <= set(g)
    assert "up_0.conv_s.weight_orig" in g and "up_0.conv_s.bias" not in g
    assert "G_middle_5.norm_1.mlp_shared.0.weight" in g and "up_1.norm_s.mlp_beta.bias" in g
    assert g["conv_img.0.weight"].shape == (12, 64, 3, 3) and g["fc.weight"].shape == (512, 256, 3, 3)

    assert _key_patterns(official["stitching"]) == {"mlp.N.weight", "mlp.N.bias"}
    assert sorted({int(k.split(".")[1]) for k in official["retarget_eye"].state_dict()}) == [0, 2, 4, 6, 8, 10]
    assert sorted({int(k.split(".")[1]) for k in official["stitching"].state_dict()}) == [0, 2, 4, 6]


def test_official_forward_signatures(official):
    with torch.no_grad():
        x = torch.rand(1, 3, 256, 256)
        feat = official["appearance_feature_extractor"].eval()(x)
        assert feat.shape == (1, 32, 16, 64, 64)
        raw = official["motion_extractor"].eval()(x)
        assert {k: tuple(v.shape) for k, v in raw.items()} == {
            "kp": (1, 63), "exp": (1, 63), "pitch": (1, 66), "yaw": (1, 66), "roll": (1, 66), "t": (1, 3),
            "scale": (1, 1)
        }


def _run(modules, seed=1):
    torch.manual_seed(seed)
    size = tiny_config().input_size
    x = torch.rand(1, 3, size, size)
    kp_s, kp_d = torch.rand(1, 21, 3) - 0.5, torch.rand(1, 21, 3) - 0.5
    with torch.no_grad():
        feat = modules["appearance_feature_extractor"](x)
        raw = modules["motion_extractor"](x)
        warped = modules["warping_module"](feat, kp_d, kp_s)
        image = modules["spade_generator"](warped["out"])
        mlp = modules["stitching"](torch.rand(1, 126)), modules["retarget_eye"](torch.rand(1, 66))
    return [feat, *raw.values(), warped["out"], warped["occlusion_map"], warped["deformation"], image, *mlp]


def test_checkpoint_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    modules = random_modules(tiny_config())
    save_official(modules, tmp_path / "liveportrait")
    loaded = load_official(tmp_path, config=tiny_config())  # finds the liveportrait/ subfolder
    assert sorted(loaded) == sorted(modules)
    assert all(not m.training for m in loaded.values())
    for a, b in zip(_run(modules), _run(loaded)):
        assert torch.equal(a, b)

    written = convert_to_safetensors(tmp_path)
    assert len(written) == 5 and all(p.suffix == ".safetensors" for p in written)
    for pth in (tmp_path / "liveportrait").rglob("*.pth"):
        pth.unlink()  # only safetensors left: loading must not need the pickles
    again = load_official(tmp_path / "liveportrait", config=tiny_config())
    for a, b in zip(_run(modules), _run(again)):
        assert torch.equal(a, b)


def test_ddp_prefixes_and_missing_batch_counters_are_accepted(tmp_path):
    modules = random_modules(tiny_config())
    root = save_official(modules, tmp_path)
    state = torch.load(root / "base_models" / "warping_module.pth", weights_only=True)
    state = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, root / "base_models" / "warping_module.pth")
    loaded = load_official(root, config=tiny_config())
    for a, b in zip(_run(modules), _run(loaded)):
        assert torch.equal(a, b)


def test_wrong_architecture_and_pickled_objects_are_refused(tmp_path):
    root = save_official(random_modules(tiny_config()), tmp_path)
    with pytest.raises(EnlivenError, match="does not match the LivePortrait architecture"):
        load_official(root)  # tiny weights into the official-size networks

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"first.conv.weight": Payload()}, root / "base_models" / "appearance_feature_extractor.pth")
    with pytest.raises(EnlivenError, match="cannot read .* as plain tensors"):
        load_official(root, config=tiny_config())
    with pytest.raises(EnlivenError, match="does not look like LivePortrait weights"):
        load_official(tmp_path / "base_models")


def test_folding_for_inference_keeps_outputs():
    from enliven.engines.keypoint.accelerate import fold_for_inference

    modules = random_modules(tiny_config())
    folded = fold_for_inference(modules)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded["warping_module"].modules())
    assert not any(n.endswith("weight_orig") for n, _ in folded["spade_generator"].named_parameters())
    torch.manual_seed(3)
    feat = torch.randn(1, 8, 8, 16, 16)
    kp_s, kp_d = torch.rand(1, 21, 3) - 0.5, torch.rand(1, 21, 3) - 0.5
    with torch.no_grad():  # each module on identical inputs (random decoders amplify any rounding downstream)
        a, b = modules["warping_module"](feat, kp_d, kp_s), folded["warping_module"](feat, kp_d, kp_s)
        for key in ("out", "occlusion_map", "deformation"):
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(modules["spade_generator"](a["out"]), folded["spade_generator"](a["out"]),
                                   atol=1e-6, rtol=0)


def test_cached_source_work_gives_the_same_warp():
    modules = random_modules(tiny_config())
    torch.manual_seed(4)
    feat = torch.randn(1, 8, 8, 16, 16)
    kp_s, kp_d = torch.rand(1, 21, 3) - 0.5, torch.rand(1, 21, 3) - 0.5
    warp = modules["warping_module"]
    with torch.no_grad():
        cached = warp.prepare_source(feat, kp_s)
        a, b = warp(feat, kp_d, kp_s), warp(feat, kp_d, kp_s, cached)
    for key in ("out", "occlusion_map", "deformation"):
        assert torch.equal(a[key], b[key])
