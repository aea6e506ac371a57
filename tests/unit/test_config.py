"""TrainingConfig: construction, rules, I/O, replace."""

import json

import pytest
from pydantic import ValidationError

import costmodel
from costmodel import TrainingConfig, presets
from costmodel.workload import GQA, MLP, Architecture


def v3():
    return presets.get("deepseek-v3")


def small(**over):
    base = dict(model="llama3-8b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 512},
                cluster={"gpu": "H100-SXM", "num_gpus": 64}, parallelism={"tp": 8, "pp": 1, "dp": 8})
    base.update(over)
    return TrainingConfig(**base)


def errors_of(fn):
    with pytest.raises(ValidationError) as err:
        fn()
    return str(err.value)


def test_preset_shape():
    cfg = v3()
    assert cfg.model.name == "deepseek-v3" and cfg.cluster.gpu.name == "H800-SXM"
    assert cfg.microbatches == 120
    assert cfg.cluster.nvlink_bandwidth.to("GB/s").m == 200
    assert cfg.cluster.nic_bandwidth.to("GB/s").m == 50
    assert cfg.costs.gpu_hour_price.to("USD/hour").m == 2


def test_frozen_and_extra_forbidden():
    cfg = small()
    with pytest.raises(ValidationError):
        cfg.goodput = 0.5
    msg = errors_of(lambda: small(parallelism={"tp": 8, "dp": 8, "pipeline": 2}))
    assert "parallelism.pipeline" in msg and "Extra inputs" in msg


@pytest.mark.parametrize(
    "change, words",
    [
        ({"parallelism.pp": 6}, ["parallelism.tp*pp*dp*cp", "1*6*128*1 = 768", "cluster.num_gpus=2048"]),
        ({"parallelism.ep": 48}, ["parallelism.ep=48", "model.moe.n_routed=256"]),
        ({"parallelism.ep": 256}, ["parallelism.ep=256", "dp*cp*tp"]),
        ({"data.global_batch": 15000}, ["data.global_batch=15000", "whole number of micro-batches"]),
        ({"cluster.gpu": "A100-SXM-80GB"}, ["precision.gemm='fp8'", "A100-SXM-80GB"]),
        ({"parallelism.schedule": "1f1b", "parallelism.virtual_stages": 2}, ["parallelism.virtual_stages=2"]),
        ({"data.global_batch": 3072, "data.batch_ramp": None}, ["dualpipe", "2*pp = 32", "24"]),
        ({"cluster.num_gpus": 2044}, ["cluster.num_gpus=2044", "8 GPUs (cluster.gpus_per_node"]),
        ({"data.batch_ramp": {"start": 20000, "tokens": 1e9}}, ["data.batch_ramp.start=20000"]),
        ({"goodput": 0}, ["goodput", "greater than 0"]),
        ({"cluster.scale_out_bandwidth": "2 USD/hour"}, ["cluster.scale_out_bandwidth", "[currency] / [time]"]),
        ({"parallelism.schedule": "pipedream"}, ["parallelism.schedule", "pipedream"]),
    ],
)
def test_rules_name_field_rule_and_value(change, words):
    msg = errors_of(lambda: v3().replace(**change))
    for w in words:
        assert w in msg, (w, msg)


def test_dense_model_rules():
    assert "parallelism.ep=2 must be 1 for the dense model" in errors_of(
        lambda: small(parallelism={"tp": 8, "dp": 8, "ep": 2}))
    assert "parallelism.tp=3" in errors_of(lambda: small(parallelism={"tp": 3, "dp": 8}, cluster={"gpu": "H100-SXM", "num_gpus": 24}))
    assert "model.n_layers=32" in errors_of(lambda: small(parallelism={"tp": 1, "pp": 64, "dp": 1}))
    assert "data.seq_len=4100" in errors_of(
        lambda: small(data={"tokens": 1e12, "seq_len": 4096, "global_batch": 512},
                      parallelism={"tp": 1, "dp": 8, "cp": 8}, cluster={"gpu": "H100-SXM", "num_gpus": 64})
        .replace(**{"data.seq_len": 4100}))
    assert "mla-up-proj" in errors_of(lambda: small(parallelism={"tp": 8, "dp": 8, "recompute": "mla-up-proj"}))


def test_interleaved_needs_microbatches_divisible_by_pp():
    msg = errors_of(lambda: small(parallelism={"tp": 8, "pp": 4, "dp": 2, "schedule": "interleaved",
                                               "virtual_stages": 2}, data={"tokens": 1e12, "seq_len": 4096, "global_batch": 20}))
    assert "interleaved" in msg and "divisible by pp=4" in msg


def test_missing_nic_is_an_error_not_a_guess():
    msg = errors_of(lambda: small(cluster={"gpu": "H20", "num_gpus": 64}, precision={"gemm": "bf16"}))
    assert "cluster.scale_out_bandwidth must be given" in msg and "H20" in msg
    assert small(cluster={"gpu": "H20", "num_gpus": 64, "scale_out_bandwidth": "400 Gbit/s"})


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_round_trip_through_text(fmt):
    cfg = v3()
    text = getattr(cfg, f"to_{fmt}")()
    assert getattr(TrainingConfig, f"from_{fmt}")(text) == cfg


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_round_trip_through_files(tmp_path, suffix):
    cfg = v3().replace(**{"cluster.scale_up_bandwidth": "160 GB/s"})
    path = tmp_path / f"run{suffix}"
    cfg.save(path)
    assert TrainingConfig.from_file(path) == cfg
    with pytest.raises(ValueError, match=r"\.json, \.yaml"):
        cfg.save(tmp_path / "run.txt")


def test_catalogue_entries_dump_by_name_custom_ones_in_full():
    d = v3().to_dict()
    assert d["model"] == "deepseek-v3" and d["cluster"]["gpu"] == "H800-SXM"
    custom = Architecture(name="mine", n_layers=4, hidden=512, vocab_size=1000,
                          attention=GQA(n_heads=8), mlp=MLP(ffn_hidden=1024))
    cfg = small(model=custom, parallelism={"tp": 8, "dp": 8})
    dumped = json.loads(cfg.to_json())
    assert dumped["model"]["name"] == "mine" and dumped["model"]["hidden"] == 512
    assert TrainingConfig.from_json(cfg.to_json()) == cfg


def test_custom_gpu_in_config():
    cfg = small(cluster={"gpu": {"name": "X200", "peaks": {"bf16": "2000 TFLOP/s"}, "hbm_capacity": "288 GB",
                                 "hbm_bandwidth": "8 TB/s", "scale_up_bidirectional": "1800 GB/s",
                                 "typical_nic": "800 Gbit/s", "scale_up_domain": 8}, "num_gpus": 64})
    assert cfg.cluster.gpu.peak("bf16").m == 2000
    assert TrainingConfig.from_toml(cfg.to_toml()) == cfg


def test_replace_by_dotted_path():
    cfg = v3()
    new = cfg.replace(**{"parallelism.pp": 8, "parallelism.dp": 256, "cluster.gpu": "H100-SXM"})
    assert new.parallelism.pp == 8 and new.cluster.gpu.name == "H100-SXM"
    assert new.cluster.nvlink_bandwidth.to("GB/s").m == 450  # follows the GPU
    assert cfg.parallelism.pp == 16  # the original is unchanged
    assert cfg.replace(**{"model.n_layers": 59}).model.n_layers == 59
    assert cfg.replace(model="deepseek-v3") == cfg
    with pytest.raises(ValueError, match="'parallelism.foo' is not a field"):
        cfg.replace(**{"parallelism.foo": 1})
    with pytest.raises(ValueError, match="is None"):
        presets.get("llama3-405b").replace(**{"data.batch_ramp.start": 2})


def test_quantities_are_accepted_as_objects():
    cfg = small(cluster={"gpu": "H100-SXM", "num_gpus": 64, "scale_out_bandwidth": costmodel.Q_(50, "GB/s")})
    assert cfg.cluster.nic_bandwidth.to("Gbit/s").m == pytest.approx(400)
