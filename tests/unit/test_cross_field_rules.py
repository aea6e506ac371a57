"""Cross-field rules that used to pass and give a plausible wrong number (issue #7, items 3
and 5). Each message names the field, the rule and the value."""

import pytest
from pydantic import ValidationError

import costmodel
from costmodel import TrainingConfig, presets


def v3(**changes):
    return presets.get("deepseek-v3").replace(**changes)


@pytest.mark.parametrize("changes, words", [
    ({"parallelism.comm_sms": 132}, ["parallelism.comm_sms=132", "cluster.gpu.sms=132"]),
    ({"parallelism.comm_sms": 200}, ["parallelism.comm_sms=200"]),
    ({"costs.fleet_gpus": 100}, ["costs.fleet_gpus=100", "cluster.num_gpus=2048"]),
    ({"cluster.gpus_per_node": 16}, ["cluster.gpus_per_node=16", "scale-up domain", "8"]),
    ({"cluster.gpus_per_node": 4096}, ["cluster.gpus_per_node=4096"]),
])
def test_rule_refuses_with_field_rule_and_value(changes, words):
    with pytest.raises(ValidationError) as err:
        v3(**changes)
    for w in words:
        assert w in str(err.value)


def test_reserving_sms_needs_the_sm_count():
    g = costmodel.gpu("H100-SXM").model_dump()
    g.update(name="custom", sms=None)
    with pytest.raises(ValidationError, match="comm_sms=20 needs the SM count"):
        v3(**{"cluster.gpu": g})
    v3(**{"cluster.gpu": g, "parallelism.comm_sms": 0})  # no reservation: no SM count needed


@pytest.mark.parametrize("name", [g.name for g in costmodel.gpus()])
def test_every_catalogued_gpu_knows_its_sms_and_scale_up_domain(name):
    g = costmodel.gpu(name)
    assert g.sms and g.scale_up_domain
    # a reservation costs compute on every GPU, B200 and MI300X included, while the
    # all-to-all runs (issue #8 item 3): V3's layout on each part is slower with 20 SMs
    # held than the ideal overlap (compute and all-to-all at full speed side by side)
    from costmodel.network import compute_share
    node = min(8, g.scale_up_domain)
    cfg = v3(**{"cluster.gpu": name, "cluster.gpus_per_node": node}) if g.supports("fp8") else None
    if cfg is not None:
        assert compute_share(cfg.parallelism.comm_sms, g.sms) == pytest.approx((g.sms - 20) / g.sms)


@pytest.mark.parametrize("schedule", ["dualpipev", "zbv"])
def test_v_schedules_need_two_chunks_of_layers_per_rank(schedule):
    base = dict(model="llama3-8b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 1024},
                cluster={"gpu": "H100-SXM", "num_gpus": 32})
    TrainingConfig(**base, parallelism={"pp": 16, "dp": 2, "schedule": schedule})  # 32 chunks, 32 layers
    with pytest.raises(ValidationError, match=r"2\*pp = 64 chunks.*n_layers=32"):
        TrainingConfig(**{**base, "cluster": {"gpu": "H100-SXM", "num_gpus": 32}},
                       parallelism={"pp": 32, "dp": 1, "schedule": schedule})


def test_nodes_default_to_the_gpus_scale_up_domain():
    cfg = TrainingConfig(model="llama3-8b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 72},
                         cluster={"gpu": "GB200", "num_gpus": 72}, parallelism={"tp": 8, "dp": 9})
    assert cfg.cluster.gpus_per_node is None and cfg.cluster.node_size == 72
    with pytest.raises(ValidationError, match="gpus_per_node=8 must not exceed.*2 GPUs"):
        TrainingConfig(model="llama3-8b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 64},
                       cluster={"gpu": "H100-PCIe", "num_gpus": 64, "gpus_per_node": 8},
                       parallelism={"tp": 8, "dp": 8})


def test_tp16_over_two_nodes_is_slower_than_tp8_inside_one():
    base = dict(model="llama3-70b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 512},
                cluster={"gpu": "H100-SXM", "num_gpus": 128})
    tp8 = costmodel.estimate(TrainingConfig(**base, parallelism={"tp": 8, "dp": 16}), check=False)
    tp16 = costmodel.estimate(TrainingConfig(**base, parallelism={"tp": 16, "dp": 8}), check=False)
    assert tp16.step_time > tp8.step_time


def test_prices_are_stamped_with_their_gpu_and_a_swap_is_reported():
    cfg = presets.get("deepseek-v3")
    assert cfg.costs.priced_for == "H800-SXM"
    b200 = cfg.replace(**{"cluster.gpu": "B200"})
    e = costmodel.estimate(b200, check=False)
    assert e.warnings and "set for H800-SXM" in e.warnings[0] and "B200" in e.warnings[0]
    assert e.cost_basis["priced_for"] == "H800-SXM"
    confirmed = b200.replace(**{"costs.priced_for": "B200"})
    assert costmodel.estimate(confirmed, check=False).warnings == ()
    assert costmodel.estimate(cfg).warnings == ()
    # a config without prices has nothing to stamp
    assert presets.get("llama3-405b").costs.priced_for is None
