"""Long clips in segments (``implicit_diffusion.pipeline.generate_stream``), with tiny random weights (CPU).

Golden values: the release's algorithm over a whole clip, as this package composed it before segments
(``encode_motion`` → ``sampling.sample`` → ``sampling.decode_chunks``), for a clip that fits in one segment;
the segment rules written out per frame; and the physical property of a cross-fade (a blended frame lies
between the two frames it blends, per pixel).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402

from enliven import engines  # noqa: E402
from enliven.engines.implicit_diffusion import load_official, pipeline  # noqa: E402
from enliven.engines.implicit_diffusion import svd_sampling as sampling  # noqa: E402
from enliven.engines.implicit_diffusion.pipeline import (  # noqa: E402
    DrivingFrame,
    MotionReader,
    encode_motion,
    generate,
    generate_stream,
    stream_lookahead,
)
from enliven.engines.implicit_diffusion.svd_sampling import crossfade, segment_plan, segment_weights  # noqa: E402
from enliven.engines.implicit_diffusion.tiny import save_tiny  # noqa: E402
from enliven.errors import EnlivenError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64
# small windows and pads, unit guidance (one UNet branch): a segment of 6 frames is 8 padded frames, 2 windows
FAST = dict(steps=1, guidance=(1.0, 1.0), window=4, overlap=0, shift_offset=1, pad=1, seed=3)
SEGMENT, SEGMENT_OVERLAP = 6, 2
LONG = 16  # 4 segments: (0, 6), (4, 10), (8, 14), (12, 16)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_official(save_tiny(tmp_path_factory.mktemp("hp"), seed=0).parent)


def _driver(frames: int, seed: int = 0):
    """A reference picture, its landmarks, and driving frames whose landmark spread changes every few frames (so
    the intensity buckets differ from chunk to chunk)."""
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    base = rng.uniform(0.3 * SIZE, 0.7 * SIZE, (478, 2))
    landmarks = np.c_[base, np.zeros(478)]
    driving = []
    for f in range(frames):
        moved = landmarks.copy()
        moved[:, :2] += rng.normal(0, 0.2 + 2.0 * ((f // 3) % 3), (478, 2))
        driving.append(DrivingFrame(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), moved))
    return reference, landmarks, driving


# ---------------------------------------------------------------- the plan


@pytest.mark.parametrize("segment,overlap", [(6, 2), (8, 3), (25, 0), (10, 5), (250, 25)])
@pytest.mark.parametrize("frames", [1, 5, 6, 7, 8, 9, 13, 24, 25, 26, 100, 251, 1000])
def test_segments_cover_the_clip_with_the_overlap_asked_and_weights_summing_to_one(frames, segment, overlap):
    plan = segment_plan(frames, segment, overlap)
    assert plan[0][0] == 0 and plan[-1][1] == frames
    assert all(0 < end - start <= segment for start, end in plan)
    for (_, end), (start, _) in zip(plan, plan[1:]):
        assert end - start == overlap  # each next one starts `overlap` frames before its predecessor's end
    assert all(end - start > overlap for start, end in plan[1:])  # every later segment gives new frames
    if frames <= segment:
        assert plan == [(0, frames)]
    total, holders = np.zeros(frames), np.zeros(frames, int)
    for (start, end), weights in zip(plan, segment_weights(plan, overlap)):
        assert len(weights) == end - start and (weights > 0).all() and (weights <= 1).all()
        total[start:end] += weights
        holders[start:end] += 1
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)
    assert holders.min() == 1 and holders.max() <= 2


def test_segment_rules_written_out():
    assert segment_plan(13, 8, 3) == [(0, 8), (5, 13)]
    assert segment_plan(14, 8, 3) == [(0, 8), (5, 13), (10, 14)]
    assert segment_plan(10**6, None, 25) == [(0, 10**6)]
    np.testing.assert_allclose(crossfade(3), [0.25, 0.5, 0.75])
    assert segment_weights([(0, 8), (5, 13)], 3)[1].tolist() == [0.25, 0.5, 0.75, 1, 1, 1, 1, 1]
    for segment, overlap in [(6, 4), (6, -1), (0, 0)]:
        with pytest.raises(ValueError, match="overlap <= segment / 2"):
            segment_plan(20, segment, overlap)


def test_bad_segment_options_fail_in_one_line_before_any_work(models):
    with pytest.raises(EnlivenError, match="segment must be >= 25, got 10"):
        engines.create("implicit-diffusion", segment=10, models={})
    with pytest.raises(EnlivenError, match="segment_overlap must be between 0 and 50, got 60"):
        engines.create("implicit-diffusion", segment=100, segment_overlap=60, models={})
    engine = engines.create("implicit-diffusion", models=models)
    assert (engine.segment, engine.segment_overlap, engine.lookahead) == (250, 25, 250 + 24)
    reference, landmarks, driving = _driver(4)
    for segment, overlap, message in [(3, 0, "at least a window"), (8, 5, "half the segment")]:
        with pytest.raises(ValueError, match=message):
            next(generate_stream(models, reference, driving, reference_landmarks=landmarks, segment=segment,
                                 segment_overlap=overlap, **FAST))


# ---------------------------------------------------------------- a frame's conditions


def test_motion_is_made_on_the_clips_chunk_grid_whatever_the_segments(models):
    """Buckets per chunk of the clip (not restarted per segment), the expression box from the clip's first frame:
    read segment by segment, dropping finished frames, every frame's motion tokens are the whole clip's."""
    _, _, driving = _driver(14)
    whole = encode_motion(models, driving, chunk=4)
    reader = MotionReader(models, driving, chunk=4)
    for start, end in segment_plan(14, SEGMENT, SEGMENT_OVERLAP):
        reached, last = reader.read_through(start + SEGMENT)
        reader.motion.drop_before(start)
        assert reached == end and last == (end == 14) and reader.motion.held <= SEGMENT + 3
        assert reader.motion.buckets == whole.buckets[start : start + reader.motion.held]
        frames = list(range(start, end))
        torch.testing.assert_close(reader.motion.tokens(frames), whole.tokens(frames), rtol=0, atol=0)
    assert len({*whole.buckets}) > 1  # the test would not see a restarted grid otherwise


# ---------------------------------------------------------------- a clip that fits: the release's result


def test_a_clip_within_a_segment_is_the_whole_clip_result(models):
    reference, landmarks, driving = _driver(5)
    options = dict(FAST, guidance=(1.5, 2.0))  # the three branches
    segmented = generate(models, reference, driving, reference_landmarks=landmarks, **options)  # default: 250
    # what generate did before segments: the release's sampling over the whole clip
    tokens = pipeline.image_tokens(models, reference, landmarks)
    latent = pipeline.reference_latent(models, reference)
    pose = pipeline.pose_features(models, (SIZE, SIZE))
    motion = encode_motion(models, driving, chunk=options["window"])
    sample_options = {k: options[k] for k in ("steps", "guidance", "window", "overlap", "shift_offset", "pad", "seed")}
    clean = sampling.sample(models, tokens, motion, pose, latent, **sample_options)
    before = np.stack(list(sampling.decode_chunks(models, clean, chunk=pipeline.DECODE_CHUNK, pad=options["pad"])))
    assert segmented.shape == (5, SIZE, SIZE, 3)
    np.testing.assert_array_equal(segmented, before)


# ---------------------------------------------------------------- a long clip in segments


def _tensor_bytes(skip: set[int]) -> int:
    """Bytes of the torch tensors alive, storages counted once, the models' own tensors left out."""
    storages = {}
    for obj in gc.get_objects():
        if type(obj) in (torch.Tensor, torch.nn.Parameter) and id(obj) not in skip:
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _run(models, frames: int, monkeypatch, segment=SEGMENT):
    """A stream with a counting driver; per sampled segment, the tensor bytes alive at its end (more than before
    the stream started) and its decoded frames (before the cross-fade)."""
    reference, landmarks, driving = _driver(frames)
    skip = {id(t) for m in models.values() if isinstance(m, torch.nn.Module) for t in m.state_dict(keep_vars=True)
            .values()}
    reads, ahead, alive, decoded = [0], [], [], []

    def counted():
        for frame in driving:
            reads[0] += 1
            yield frame

    def probe(_step):
        alive.append(_tensor_bytes(skip) - baseline)

    original = sampling.decode_chunks

    def recorded(*args, **kwargs):
        decoded.append([])
        for frame in original(*args, **kwargs):
            decoded[-1].append(frame.copy())
            yield frame

    monkeypatch.setattr(sampling, "decode_chunks", recorded)
    out = []
    gc.collect()
    baseline = _tensor_bytes(skip)  # what the process held before (other tests' tensors, the driver's ...)
    for frame in generate_stream(models, reference, counted(), reference_landmarks=landmarks, segment=segment,
                                 segment_overlap=SEGMENT_OVERLAP, on_step=probe, **FAST):
        ahead.append(reads[0] - len(out))  # read, but not yet given out
        out.append(frame.copy())  # a copy: a view would keep its decoded chunk's tensor alive here
        del frame
    monkeypatch.undo()
    return dict(frames=np.stack(out), ahead=ahead, alive=alive, decoded=decoded)


@pytest.fixture(scope="module")
def long_run(models):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _run(models, LONG, monkeypatch)


def test_a_long_clip_streams_with_a_bounded_look_ahead_and_memory(models, long_run, monkeypatch):
    plan = segment_plan(LONG, SEGMENT, SEGMENT_OVERLAP)
    assert len(long_run["frames"]) == LONG and len(long_run["decoded"]) == len(plan) == 4
    assert [len(d) for d in long_run["decoded"]] == [end - start for start, end in plan]
    limit = stream_lookahead(SEGMENT, FAST["window"])
    assert limit == 9 and max(long_run["ahead"]) <= limit  # a segment, completed to the chunk grid of 4
    assert long_run["ahead"][0] < LONG  # the first frame came before the driver was read whole
    # memory held does not grow with the clip: a clip of one segment holds as much
    short = _run(models, SEGMENT, monkeypatch)
    assert len(short["alive"]) == 1
    assert max(long_run["alive"]) <= 1.1 * short["alive"][0], (long_run["alive"], short["alive"])
    # ... where the whole clip in one pass holds more (so the check above can fail)
    whole = _run(models, LONG, monkeypatch, segment=None)
    assert whole["alive"][0] > 1.5 * short["alive"][0]


def test_seam_frames_are_a_cross_fade_of_the_two_segments(long_run):
    plan = segment_plan(LONG, SEGMENT, SEGMENT_OVERLAP)
    expected = np.zeros((LONG, SIZE, SIZE, 3), np.float64)
    for (start, end), weights, frames in zip(plan, segment_weights(plan, SEGMENT_OVERLAP), long_run["decoded"]):
        expected[start:end] += weights[:, None, None, None] * np.stack(frames)
    out = long_run["frames"]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    for k in range(len(plan) - 1):
        before, after = long_run["decoded"][k], long_run["decoded"][k + 1]
        start, end = plan[k + 1][0], plan[k][1]
        a, b = np.stack(before[-SEGMENT_OVERLAP:]), np.stack(after[:SEGMENT_OVERLAP])
        blended = out[start:end]
        assert (blended >= np.minimum(a, b) - 1e-6).all() and (blended <= np.maximum(a, b) + 1e-6).all()
        assert np.abs(a - b).max() > 0.05  # the segments differ there: a blend, not a copy of either
        assert np.abs(blended - a).max() > 0 and np.abs(blended - b).max() > 0
        # away from the overlap, each segment's own frames, in order
        np.testing.assert_array_equal(out[end], after[SEGMENT_OVERLAP])
        np.testing.assert_array_equal(out[start - 1], before[start - 1 - plan[k][0]])


def test_the_engine_passes_its_segments_on(models, monkeypatch):
    seen = {}

    def fake(models, reference, frames, **options):
        seen.update(options)
        yield np.zeros((SIZE, SIZE, 3), np.float32)

    monkeypatch.setattr(pipeline, "generate_stream", fake)
    engine = engines.create("implicit-diffusion", models=models, segment=40, segment_overlap=20)
    assert engine.lookahead == stream_lookahead(40) == 64
    state = engine.prepare(np.zeros((SIZE, SIZE, 3), np.uint8), np.zeros((478, 3)))
    assert len(list(engine.render_stream(state, iter([])))) == 1
    assert (seen["segment"], seen["segment_overlap"]) == (40, 20)
