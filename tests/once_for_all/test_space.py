import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from once_for_all import ArchSpace, SubnetConfig, SupernetSpec
from once_for_all.space import make_divisible

SPEC = SupernetSpec(dims=1, in_channels=1, num_classes=10, stem_channels=8, stage_widths=(8, 16, 24),
                    stage_strides=(1, 2, 2), stage_se=(False, True, True), resolutions=(32, 36, 40))
SPACE = ArchSpace.full(SPEC)
seeds = st.integers(0, 2**32 - 1)


def test_make_divisible_matches_ofa():
    assert [make_divisible(v, 8) for v in (72, 120, 240, 200, 184, 480, 672, 960, 10, 3)] == \
        [72, 120, 240, 200, 184, 480, 672, 960, 16, 8]
    assert make_divisible(16 * 4.5, 1) == 72


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_str_parse_round_trip_and_key(seed):
    c = SPACE.sample(random.Random(seed))
    assert SubnetConfig.parse(str(c)) == c
    assert SubnetConfig.parse(str(c)).key() == c.key() and len(c.key()) == 10


def test_str_form_and_fractional_expand():
    c = SubnetConfig((3, 5), (3.0, 2.5), (2,), 40)
    assert str(c) == "r40-d2-k3.5-e3.2p5"
    assert SubnetConfig.parse(str(c)) == c


@pytest.mark.parametrize("bad, part", [("r40-d2-k3.5", "missing"), ("r40-d2-k3.x-e3.4", "invalid literal"),
                                       ("r40-q2-k3-e3", "'q2'"), ("r40-r41-d2-k3-e3", "'r41'")])
def test_parse_errors_name_the_part(bad, part):
    with pytest.raises(ValueError, match=part):
        SubnetConfig.parse(bad)


def test_validate_names_field_value_and_allowed():
    good = SPACE.largest()
    SPACE.validate(good)
    cases = [(dict(kernels=good.kernels[:-1]), r"kernels has 11 entries"),
             (dict(kernels=(9,) + good.kernels[1:]), r"kernels\[block 0\]=9 not allowed; allowed: \[3, 5, 7\]"),
             (dict(expands=good.expands[:5] + (5,) + good.expands[6:]), r"expands\[block 5\]=5"),
             (dict(depths=(4, 1, 4)), r"depths\[stage 1\]=1"),
             (dict(resolution=33), r"resolution=33 not allowed; allowed: \[32, 36, 40\]")]
    for change, msg in cases:
        with pytest.raises(ValueError, match=msg):
            SPACE.validate(SubnetConfig(**{**good.__dict__, **change}))


def test_phase_space_checks_active_blocks_only():
    kernel_phase = ArchSpace(SPEC, kernel_sizes=(3, 5, 7), expand_ratios=(6,), depths=(4,), resolutions=(40,))
    c = SubnetConfig((3,) * 12, (6,) * 12, (4, 4, 4), 40)
    kernel_phase.validate(c)
    with pytest.raises(ValueError, match=r"depths\[stage 0\]=2"):
        kernel_phase.validate(SubnetConfig((3,) * 12, (6,) * 12, (2, 4, 4), 40))
    depth_phase = ArchSpace(SPEC, expand_ratios=(6,))
    depth_phase.validate(SubnetConfig((3,) * 12, (6, 6, 3, 3) + (6,) * 8, (2, 4, 4), 40))  # blocks 2,3 skipped
    with pytest.raises(ValueError, match="not in the spec's set"):
        ArchSpace(SPEC, kernel_sizes=(9,))


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match=r"stage_strides=\(1, 2\); allowed: 3 entries"):
        SupernetSpec(1, 1, 10, 8, (8, 16, 24), (1, 2), (False,) * 3)
    with pytest.raises(ValueError, match=r"kernel_sizes=\(3, 4\); allowed: odd"):
        SupernetSpec(1, 1, 10, 8, (8,), (1,), (False,), kernel_sizes=(3, 4))


@settings(max_examples=60, deadline=None)
@given(seeds, st.floats(0, 1), st.sampled_from([(3,), (3, 7), (5, 7)]), st.sampled_from([(4,), (2, 4)]))
def test_sample_mutate_crossover_stay_inside(seed, prob, ks, ds):
    rng = random.Random(seed)
    space = ArchSpace(SPEC, kernel_sizes=ks, depths=ds, expand_ratios=(4, 6))
    a, b = space.sample(rng), SPACE.sample(rng)  # b comes from a wider space
    space.validate(a)
    for c in (space.mutate(a, rng, prob), space.mutate(b, rng, prob), space.crossover(a, space.mutate(b, rng), rng)):
        space.validate(c)
        assert all(k in ks for k in c.kernels) and all(d in ds for d in c.depths)


def test_mutate_prob_extremes():
    rng = random.Random(0)
    a = SPACE.sample(rng)
    assert SPACE.mutate(a, rng, prob=0.0, resolution_prob=0.0) == a
    genes = [SPACE.mutate(a, rng, prob=1.0).kernels for _ in range(20)]
    assert len(set(genes)) == 20  # every gene resampled


def test_canonical_and_corners():
    c = SubnetConfig(tuple(range(12)), (3,) * 12, (2, 4, 3), 40)
    can = c.canonical(SPEC)
    assert can.kernels == (0, 1, 7, 7, 4, 5, 6, 7, 8, 9, 10, 7)
    assert can.expands == (3, 3, 6, 6, 3, 3, 3, 3, 3, 3, 3, 6)
    corners = SPACE.corners()
    assert len(corners) == 8 and len(set(corners.values())) == 8
    assert corners["dmax-emax-kmax"] == SPACE.largest()
    assert corners["dmin-emin-kmin"] == SubnetConfig((3, 3, 7, 7) * 3, (3, 3, 6, 6) * 3, (2, 2, 2), 40)
    assert SPACE.smallest().resolution == 32 and SPACE.smallest().depths == (2, 2, 2)


def test_encode_one_hot_layout():
    c = SubnetConfig((3, 5, 7, 3) * 3, (3, 4, 6, 6) * 3, (2, 3, 4), 36)
    x = SPACE.encode(c)
    assert x.shape == (SPACE.encoding_size,) == (12 * 6 + 3,)
    blocks = x[:72].view(12, 6)
    expected_active = [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1]
    assert blocks.sum(1).tolist() == [2.0 * a for a in expected_active]
    assert blocks[1].tolist() == [0, 1, 0, 0, 1, 0]  # kernel 5, expand 4
    assert x[72:].tolist() == [0, 1, 0]
    assert torch.equal(SPACE.encode(c), SPACE.encode(c.canonical(SPEC)))


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_canonical_is_idempotent_valid_and_encodes_the_same(seed):
    c = SPACE.sample(random.Random(seed))
    can = c.canonical(SPEC)
    assert can.canonical(SPEC) == can and can.depths == c.depths and can.resolution == c.resolution
    SPACE.validate(can)
    assert torch.equal(SPACE.encode(can), SPACE.encode(c))
    assert (can == c) == (can.key() == c.key())
