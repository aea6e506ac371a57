"""estimate(): structure, memory and ledger equations, errors."""

import dataclasses
import json
import math

import numpy as np
import pytest

import costmodel
from costmodel import InfeasibleConfig, ledger, memory, presets
from costmodel.engine import run_steps


def v3():
    return presets.get("deepseek-v3")


def test_breakdowns_sum_exactly_to_totals():
    e = costmodel.estimate(v3())
    assert sum(v.m for v in e.step_breakdown.values()) == e.step_time.m
    assert sum(e.breakdowns["memory_breakdown"].values()) == e.values["memory_per_gpu"]
    assert sum(v.m for v in e.marginal_breakdown.values()) == e.marginal_cost.m
    assert sum(v.m for v in e.capital_breakdown.values()) == e.capital_cost.m


def test_result_units_and_types():
    e = costmodel.estimate(v3())
    assert e.step_time.check("[time]") and e.wall_time.check("[time]")
    assert e.tokens_per_second.check("[token]/[time]") and e.flops_per_gpu.check("[flop]/[time]")
    assert e.memory_per_gpu.to("GB").m > 0 and e.marginal_cost.check("[currency]")
    assert isinstance(e.mfu, float) and 0 < e.mfu < 1 and e.mfu_at_precision == pytest.approx(e.mfu / 2, rel=1e-4)
    with pytest.raises(AttributeError):
        e.nonexistent  # noqa: B018
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.fits = False


def test_to_dict_is_plain_json():
    d = costmodel.estimate(v3()).to_dict()
    text = json.dumps(d)
    assert "step_time [s]" in d and "GPU rental [USD]" in d["marginal_breakdown"]
    assert "NaN" not in text and "Infinity" not in text


def test_rental_marginal_is_gpu_hours_times_price():
    e = costmodel.estimate(v3())
    assert e.marginal_cost.m == pytest.approx(e.gpu_hours.m * 2.0, rel=1e-12)


def test_gpu_hours_are_wall_time_times_gpus_and_goodput_divides():
    cfg = v3()
    e, half = costmodel.estimate(cfg), costmodel.estimate(cfg.replace(goodput=0.5))
    assert e.gpu_hours.to("hour").m == pytest.approx(e.wall_time.to("hour").m * 2048)
    assert half.wall_time.m == pytest.approx(2 * e.wall_time.m)
    assert half.step_time == e.step_time


def test_batch_ramp_steps_closed_form_matches_integration():
    cfg = v3()
    d = cfg.data
    b0, B, tr, s = d.batch_ramp.start, d.global_batch, d.batch_ramp.tokens.m, d.seq_len
    t = np.linspace(0, tr, 200001)
    numeric = np.trapezoid(1 / (s * (b0 + (B - b0) * t / tr)), t) + (d.tokens.m - tr) / (s * B)
    assert run_steps(d, s, B) == pytest.approx(numeric, rel=1e-9)
    assert run_steps(cfg.replace(**{"data.batch_ramp": None}).data, s, B) == pytest.approx(d.tokens.m / (s * B))


def test_state_bytes_by_hand():
    # mixed-precision AdamW: 2 (weights) + 4 (master) + 4 (grads) + 8 (moments) = 18 B/param
    full = memory.state_bytes_per_param("fp32", "fp32", "fp32", 0, 64)
    assert sum(full.values()) == 18
    z1 = memory.state_bytes_per_param("fp32", "fp32", "fp32", 1, 4)
    assert z1 == {"weights": 2, "master_weights": 1, "gradients": 4, "optimizer_states": 2}
    z3 = memory.state_bytes_per_param("fp32", "bf16", "bf16", 3, 4)
    assert z3 == {"weights": 0.5, "master_weights": 1, "gradients": 0.5, "optimizer_states": 1}


def test_in_flight_by_hand():
    assert memory.in_flight("1f1b", 8, 0, 64) == 8 and memory.in_flight("1f1b", 8, 7, 64) == 1
    assert memory.in_flight("gpipe", 8, 3, 64) == 64
    assert memory.in_flight("interleaved", 8, 0, 64, v=2) == pytest.approx(8 * (1 + 7 / 16))
    assert memory.in_flight("dualpipe", 8, 0, 64) == 9  # PP + 1 (DualPipe README)
    # ZB-H1: rank r holds back r weight gradients (Qi et al. 2024), whose inputs stay until W
    assert [memory.in_flight("zb1p", 8, r, 64) for r in (0, 3, 7)] == [8, 8, 8]
    # Megatron-LM's interleaved warm-up (get_pp_rank_microbatches): 2 (pp-1-r) + (v-1) pp forwards
    # then one more before the first backward, in chunks of 1/v of a rank's micro-batch
    for r in range(8):
        assert memory.in_flight("interleaved", 8, r, 64, v=2) == pytest.approx((2 * (8 - 1 - r) + 8 + 1) / 2)


@pytest.mark.parametrize("schedule, v", [("1f1b", 1), ("zb1p", 1), ("interleaved", 2), ("interleaved", 4),
                                         ("zbv", 1), ("dualpipe", 1), ("dualpipev", 1)])
@pytest.mark.parametrize("pp", [2, 4, 8, 16])
def test_in_flight_states_stop_changing_where_the_memory_model_takes_them(schedule, pp, v):
    """``pipeline.orders.peak_states`` takes counts past ``saturated`` at it: the states at more
    micro-batches are the same."""
    from costmodel.pipeline.orders import _states_at, saturated

    m = saturated(schedule, pp, v)
    at = _states_at(schedule, pp, m, v)
    for more in (2 * pp, 4 * pp, 10 * pp):  # counts every schedule accepts (even, multiples of pp)
        assert np.array_equal(at, _states_at(schedule, pp, m + more, v))


def test_dualpipe_ranks_hold_more_of_the_chunk_they_start_with():
    """DualPipe's step 1 runs ``2 (pp/2 - h - 1)`` lone forwards of a rank's first chunk before
    the paired ones (deepseek-ai/DualPipe dualpipe.py step()), so at its peak a rank holds
    ``pp - h`` micro-batches of that chunk and ``h + 1`` of the other, ``h = min(r, pp-1-r)``
    (an independent review: V3's embedding ranks held 51 layers' activations in the model
    against 66 in the schedule, with 4 layers in chunk 0 and 1 plus the MTP block in chunk 15)."""
    from costmodel.pipeline.orders import peak_states

    pp = 16
    states, chunk = peak_states("dualpipe", pp, 10 * pp)
    for r in range(pp):
        h = min(r, pp - 1 - r)
        assert states[r].max(axis=0).tolist() == [pp - h, h + 1]
        assert chunk[r].tolist() == [h, pp - 1 - h]
    cfg = costmodel.presets.get("deepseek-v3")
    unit = np.zeros(pp)
    unit[0], unit[-1] = 4.0, 2.0  # layer-activations of chunk 0 and of chunk 15 (a layer and the MTP block)
    peaks = memory.peak_activations(cfg, unit, 0.0, 10 * pp)
    assert peaks[0] == 16 * 4 + 1 * 2 and peaks[15] == 16 * 4 + 1 * 2  # 66, not 17 x (4 + 2) / 2 = 51


def test_owned_ledger_by_hand():
    # 1000 GPU-hours, $30,000 GPU, overhead 1.5, rate 0.3224/yr; 700 W x 1.8 x 0.75 x PUE 1.2 at $0.1/kWh
    out = ledger.marginal_owned(1000, 30000, 1.5, 0.3224, 0.19, None, 700, 1.8, 0.75, 1.2, 0.1)
    hw = 30000 * 1.5 * 0.3224 / 8766 * 1000
    assert out["hardware amortization"] == pytest.approx(hw)
    assert out["interconnect amortization"] == pytest.approx(hw * 0.19 / 0.81)
    assert out["energy"] == pytest.approx(0.7 * 1.8 * 0.75 * 1.2 * 1000 * 0.1)


def test_capital_ledger_by_hand():
    out = ledger.capital(100, 30000, 1.64, 0.19, None, 1e6, 2.0, 5e5)
    assert out["GPU servers"] == 100 * 30000 * 1.64
    assert out["interconnect"] == pytest.approx(out["GPU servers"] * 0.19 / 0.81)
    assert out["facility"] == 1e6 and out["research compute"] == 1e6


def test_owned_fleet_when_no_rental_price():
    cfg = v3().replace(**{"costs.gpu_hour_price": None})
    e = costmodel.estimate(cfg)
    assert set(e.marginal_breakdown) == {"hardware amortization", "interconnect amortization", "energy"}
    assert e.capital_over_marginal > 1


def test_unpriced_run_has_no_costs():
    cfg = presets.get("megatron-gpt-18.4b")
    e = costmodel.estimate(cfg)
    assert e.marginal_cost is None and e.capital_cost is None and e.capital_over_marginal is None
    assert e.to_dict()["marginal_cost [USD]"] is None


def test_infeasible_layout_raises_with_numbers():
    cfg = v3().replace(**{"parallelism.recompute": "none", "parallelism.comm_sms": 0})
    with pytest.raises(InfeasibleConfig) as err:
        costmodel.estimate(cfg)
    assert err.value.needed > err.value.capacity
    assert "GB needed per GPU" in str(err.value) and "activations" in err.value.breakdown
    flagged = costmodel.estimate(cfg, check=False)
    assert not flagged.fits and flagged.memory_per_gpu.to("B").m == pytest.approx(err.value.needed)


def test_h800_vs_h100_same_for_deepseeks_layout_but_not_with_tensor_parallelism():
    cfg = v3()
    h800, h100 = costmodel.estimate(cfg), costmodel.estimate(cfg.replace(**{"cluster.gpu": "H100-SXM"}))
    assert h800.step_time == h100.step_time  # TP=1 and IB-bound all-to-all: NVLink never limits
    tp = presets.get("llama3-405b")
    a = costmodel.estimate(tp, check=False)
    b = costmodel.estimate(tp.replace(**{"cluster.gpu": "H800-SXM"}), check=False)
    assert b.step_breakdown["exposed communication"] > a.step_breakdown["exposed communication"]


def test_dualpipe_hides_all_to_all_that_1f1b_exposes():
    # DualPipe's exposed communication is only what the SMs its all-to-all kernels hold
    # cost the overlapped compute: held for the whole pair, compute runs on (132 - 20)/132
    # of the GPU, so the line is (132/112 - 1) times the compute; 1F1B exposes the
    # all-to-all itself and is slower
    cfg = v3()
    dual = costmodel.estimate(cfg)
    one = costmodel.estimate(cfg.replace(**{"parallelism.schedule": "1f1b"}), check=False)
    held = dual.step_breakdown["exposed communication"] / dual.step_breakdown["compute"]
    assert held.to("").m == pytest.approx(132 / 112 - 1, rel=1e-9)
    assert one.step_time > dual.step_time


def test_dualpipe_without_reserved_sms_hides_nothing():
    # issue #8 item 3: with comm_sms=0 no communication kernel runs beside compute
    cfg = v3()
    held = costmodel.estimate(cfg)
    none = costmodel.estimate(cfg.replace(**{"parallelism.comm_sms": 0}), check=False)
    assert none.step_time > held.step_time


def test_fp8_is_faster_than_bf16_but_not_twice():
    cfg = v3()
    fp8, bf16 = costmodel.estimate(cfg), costmodel.estimate(cfg.replace(**{"precision.gemm": "bf16"}), check=False)
    ratio = bf16.step_breakdown["compute"].m / fp8.step_breakdown["compute"].m
    assert 1.0 < ratio < 2.0


def test_no_nan_anywhere():
    for name in presets.names():
        d = costmodel.estimate(presets.get(name), check=False).to_dict()
        flat = [v for v in d.values() if isinstance(v, float)]
        flat += [x for k, v in d.items() if isinstance(v, dict) and k != "cost_basis" for x in v.values()]
        assert all(math.isfinite(x) for x in flat), name


def test_mtp_modules_hold_their_own_logits():
    """Each MTP module predicts through the shared head (V3 report Sec. 2.2), so V3's head ranks
    hold two micro-batches' worth of FP32 logits, 4096 x 129,280 x 4 B each (a review found one)."""
    from costmodel import engine
    from costmodel.stages import family

    cfg = costmodel.presets.get("deepseek-v3").replace(**{"parallelism.recompute": "none"})  # no recompute transient
    p = cfg.parallelism
    fam = family(p.schedule, p.pp, p.virtual_stages, cfg.model.n_layers)
    _, logits = memory.rank_activations(cfg, fam, engine.Rows.of(cfg).scalars(), 4096.0)
    assert np.max(logits) == pytest.approx(2 * 4096 * 129_280 * 4.0)
