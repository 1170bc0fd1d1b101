"""The synthetic rope line: motion, determinism, defects and their ground truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rope_inspect.acquisition.acquirer import Acquirer
from rope_inspect.acquisition.base import FrameInfo, open_source
from rope_inspect.acquisition.ring import FrameRing
from rope_inspect.acquisition.rope_defects import DEFECT_KINDS, DefectSpec
from rope_inspect.acquisition.rope_render import RopeLook
from rope_inspect.acquisition.synthetic import RopeScene, SyntheticSource
from rope_inspect.config import LineConfig, SyntheticSourceConfig
from rope_inspect.errors import ConfigError


def _source(**overrides: object) -> SyntheticSource:
    values: dict[str, object] = {
        "kind": "synthetic",
        "realtime": False,
        "defects_per_m": 8.0,
    }
    values.update(overrides)
    cfg = SyntheticSourceConfig.model_validate(values)
    source = SyntheticSource(cfg, LineConfig(speed_m_per_s=0.5))
    source.open()
    return source


def _frames(source: SyntheticSource, n: int) -> list[tuple[np.ndarray, FrameInfo]]:
    slot = np.zeros(source.frame_shape, np.uint8)
    out = []
    for _ in range(n):
        info = source.read_into(slot, 1.0)
        assert info is not None
        out.append((slot.copy(), info))
    return out


def test_rope_moves_at_line_speed_and_frames_are_reproducible() -> None:
    first, second, other = _source(), _source(), _source(seed=1)
    try:
        a, b, c = _frames(first, 12), _frames(second, 12), _frames(other, 1)
    finally:
        for source in (first, second, other):
            source.close()
    assert a[0][0].shape == (224, 640, 3)
    steps = np.diff([info.position_m for _, info in a])
    assert steps == pytest.approx([0.5 / 20] * 11)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    for (_, x), (_, y) in zip(a, b, strict=True):
        assert [(d.defect_id, d.kind, d.bbox) for d in x.truth] == [
            (d.defect_id, d.kind, d.bbox) for d in y.truth
        ]
        for d, e in zip(x.truth, y.truth, strict=True):
            assert np.array_equal(d.mask, e.mask)
    assert not np.array_equal(a[0][0], c[0][0])


def test_rope_is_lit_on_a_dark_background() -> None:
    source = _source(defects_per_m=0.0)
    image, _ = _frames(source, 1)[0]
    source.close()
    rows = image.mean(axis=(1, 2))
    assert rows[:40].max() < 45 and rows[-40:].max() < 45
    assert rows[100:124].mean() > 100


def test_a_defect_moves_with_the_rope_between_frames() -> None:
    source = _source()
    step = round(source.step_px)
    frames = _frames(source, 80)
    source.close()
    pairs = 0
    for (_, now), (_, after) in itertools.pairwise(frames):
        later = {d.defect_id: d for d in after.truth}
        for d in now.truth:
            twin = later.get(d.defect_id)
            if twin is None or d.bbox[0] < step or d.bbox[2] >= 640:
                continue  # only defects fully in view in both frames
            assert twin.bbox == (
                d.bbox[0] - step,
                d.bbox[1],
                d.bbox[2] - step,
                d.bbox[3],
            )
            assert np.array_equal(twin.mask, d.mask)
            assert twin.position_m == d.position_m
            pairs += 1
    assert pairs > 3


def test_defect_positions_match_where_they_are_in_the_frame() -> None:
    source = _source()
    frames = _frames(source, 60)
    source.close()
    checked = 0
    for _, info in frames:
        for d in info.truth:
            if d.kind == "thickness" or d.bbox[0] == 0 or d.bbox[2] == 640:
                continue
            centre_px = (d.bbox[0] + d.bbox[2]) / 2
            assert info.position_m is not None
            position = info.position_m + (centre_px - 320) / source.px_per_m
            assert position == pytest.approx(d.position_m, abs=0.01)
            checked += 1
    assert checked > 5


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_truth_mask_covers_what_the_defect_changed(kind: str) -> None:
    scene = RopeScene(RopeLook(seed=3), defects_per_m=0.0)
    x0 = 123_456
    changed_outside = []
    for n in range(4):
        spec = DefectSpec(n, kind, x0 + 320.0, seed=3)
        clean = scene.render_span(x0, 640, defects=[]).image.astype(int)
        span = scene.render_span(x0, 640, defects=[spec])
        (truth,) = span.truth(x0, 640, scene.px_per_m)
        assert truth.kind == kind and truth.mask.any()
        mask = truth.full_mask((224, 640))
        changed = np.abs(span.image.astype(int) - clean).max(axis=2) > 25
        assert changed.sum() > 30
        assert (changed & mask).sum() > 0.3 * min(mask.sum(), changed.sum())
        changed_outside.append((changed & ~mask).sum() / changed.sum())
    assert max(changed_outside) < 0.05


def test_defect_rate_and_kinds_follow_the_config() -> None:
    scene = RopeScene(RopeLook(seed=5), defects_per_m=4.0)
    specs = scene.defects_near(0, int(50 * scene.px_per_m))
    metres = {int(s.x_px // scene.px_per_m) for s in specs}
    assert 150 < len(specs) < 250  # Poisson, 4 per metre over about 50 m
    assert {s.kind for s in specs} == set(DEFECT_KINDS)
    assert max(metres) <= 51
    assert RopeScene(RopeLook(), defects_per_m=0.0).defects_near(0, 10**7) == []


def test_synthetic_line_runs_through_the_acquirer_with_ground_truth() -> None:
    line = LineConfig(speed_m_per_s=2.0)
    source = open_source(
        SyntheticSourceConfig(kind="synthetic", fps=200, defects_per_m=20.0), line
    )
    source.open()
    ring = FrameRing(64, source.frame_shape)
    acquirer = Acquirer(source, ring)
    acquirer.start()
    seen_truth = 0
    try:
        for _ in range(40):
            frame = ring.get(5.0)
            assert frame is not None and frame.position_m is not None
            seen_truth += len(frame.truth)
            ring.release(frame)
    finally:
        assert acquirer.stop(3.0)
        source.close()
    assert seen_truth > 0


def test_configs_it_cannot_render_are_refused() -> None:
    cfg = SyntheticSourceConfig(kind="synthetic")
    with pytest.raises(ConfigError, match="horizontal"):
        SyntheticSource(cfg, LineConfig(rope_axis="vertical"))
    with pytest.raises(ConfigError, match="towards x = 0"):
        SyntheticSource(cfg, LineConfig(image_travel="positive"))
    with pytest.raises(ConfigError, match="does not fit") as err:
        SyntheticSource(cfg, LineConfig(rope_diameter_mm=40))
    assert "px_per_mm" in err.value.hint
