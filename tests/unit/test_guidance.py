"""Guidance algebra: chains reproduce the official HuMo formulas term by term, schedules switch where
the official code switches, zero-scale and identical passes are skipped, text forms parse or fail clearly."""

import pytest
import torch
from humanvideo.samplers import guidance as g

T, I, A = g.TEXT, g.IMAGE, g.AUDIO  # noqa: E741  (the paper's letters)


def _preds(*keys):
    gen = torch.Generator().manual_seed(0)
    return {g.make_pass(k): torch.randn(2, 3, generator=gen, dtype=torch.float64) for k in keys}


def test_chain_equals_paper_formula():
    p = _preds((), (T,), (T, I), (T, I, A))
    chain = g.GuidanceChain(tuple(p), (3.0, 2.0, 5.0))
    v0, vt, vti, vtia = p.values()
    expected = 5.0 * (vtia - vti) + 2.0 * (vti - vt) + 3.0 * (vt - v0) + v0
    torch.testing.assert_close(chain.combine(p), expected)


def test_humo_17b_tia_official_switch():
    plan = g.humo_17b_plan()
    sched = plan.resolve({T, I, A})
    p = _preds((I,), (T, I), (T, I, A), ())
    neg_img, ti, tia, null = p[g.make_pass([I])], p[g.make_pass([T, I])], p[g.make_pass([T, I, A])], p[g.make_pass()]
    # generate.py forward_tia with t = 1000 * sigma
    early = sched.chain_at(0.9998)
    torch.testing.assert_close(early.combine(p), 5.5 * (tia - ti) + 5.0 * (ti - neg_img) + neg_img)
    late = sched.chain_at(0.978)
    torch.testing.assert_close(late.combine(p), 5.5 * (tia - ti) + 3.0 * (ti - null) + null)
    assert sched.chain_at(0.9801) == early
    assert sched.chain_at(0.98) == late  # t > 980 is strict
    assert len(early.needed_passes()) == 3 and len(late.needed_passes()) == 3


def test_humo_17b_ta_has_no_switch():
    sched = g.humo_17b_plan(scale_t=4.0, scale_a=6.0).resolve({T, A})
    p = _preds((), (T,), (T, A))
    neg, t, ta = p.values()
    for sigma in (0.999, 0.5, 0.01):
        torch.testing.assert_close(sched.chain_at(sigma).combine(p), 6.0 * (ta - t) + 4.0 * (t - neg) + neg)


def test_humo_1_7b_tia_and_ta():
    plan = g.humo_1_7b_plan(scale_t=7.0, scale_a=7.5, scale_i=4.0)
    p = _preds((), (T,), (T, A), (T, I, A))
    neg, t, ta, tia = p.values()
    chain = plan.resolve({T, I, A}).chain_at(0.5)
    torch.testing.assert_close(chain.combine(p), 4.0 * (tia - ta) + 7.5 * (ta - t) + 7.0 * (t - neg) + neg)
    ta_chain = plan.resolve({T, A}).chain_at(0.5)
    assert ta_chain.needed_passes() == [g.make_pass(), g.make_pass([T]), g.make_pass([T, A])]
    torch.testing.assert_close(ta_chain.combine(p), 7.5 * (ta - t) + 7.0 * (t - neg) + neg)


def test_zero_scales_and_identical_passes_are_skipped():
    chain = g.GuidanceChain((g.make_pass(), g.make_pass([T]), g.make_pass([T, A])), (0.0, 4.0))
    assert chain.needed_passes() == [g.make_pass(), g.make_pass([T]), g.make_pass([T, A])]
    chain = g.GuidanceChain((g.make_pass(), g.make_pass([T]), g.make_pass([T, A])), (4.0, 0.0))
    assert chain.needed_passes() == [g.make_pass(), g.make_pass([T])]
    # TI mode (audio missing): the audio term vanishes, TIA == TI computed once
    sched = g.humo_17b_plan().resolve({T, I})
    assert sched.chain_at(0.5).needed_passes() == [g.make_pass(), g.make_pass([T, I])]


def test_step_schedule_and_step_index():
    sched = g.parse_schedule("I | TI:5 | TIA:5.5\n0 | TI:3 | TIA:5.5", "5", "step")
    sigmas = torch.linspace(1, 0, 11)
    assert g.step_index(float(sigmas[4]), sigmas) == 4
    assert sched.chain_at(0.0, step=4).passes[0] == g.make_pass([I])
    assert sched.chain_at(0.0, step=5).passes[0] == g.make_pass()
    with pytest.raises(ValueError, match="step is unknown"):
        sched.chain_at(0.5, None)


def test_parse_roundtrip_and_errors():
    chain = g.parse_chain("0 | T:5 | TA:5.5")
    assert chain.passes == (g.make_pass(), g.make_pass([T]), g.make_pass([T, A])) and chain.scales == (5.0, 5.5)
    assert g.parse_chain(chain.describe()) == chain
    with pytest.raises(ValueError, match="unknown condition letter"):
        g.parse_chain("0 | X:5")
    with pytest.raises(ValueError, match="must look like"):
        g.parse_chain("0 | T")
    with pytest.raises(ValueError, match="need 1 switch point"):
        g.parse_schedule("0 | T:5\n0 | T:3", "", "sigma")
    with pytest.raises(ValueError, match="strictly decreasing"):
        g.parse_schedule("0 | T:5\n0 | T:3\n0 | T:1", "0.5, 0.9", "sigma")
