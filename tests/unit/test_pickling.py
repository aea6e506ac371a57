"""Configs, GPUs and results pickle, so a process pool can run estimates (issue #7, item 2)."""

import pickle
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

import costmodel
from costmodel import EstimateOutOfRange, InfeasibleConfig, TrainingConfig, UnknownName, presets


def test_pickle_round_trips_config_gpu_estimate_and_quantity():
    cfg = presets.get("deepseek-v3")
    for obj in (cfg, cfg.cluster.gpu, costmodel.gpu("GB200"), cfg.model, cfg.data.tokens,
                costmodel.Q_("400 Gbit/s")):
        assert pickle.loads(pickle.dumps(obj)) == obj
    e = costmodel.estimate(cfg)
    back = pickle.loads(pickle.dumps(e))
    assert back == e and back.to_dict() == e.to_dict() and back.step_time == e.step_time


def test_user_defined_gpu_config_pickles():
    cfg = TrainingConfig(
        model="llama3-8b", data={"tokens": "1T tokens", "seq_len": 4096, "global_batch": 512},
        cluster={"gpu": {"name": "X200", "peaks": {"bf16": "2000 TFLOPS"}, "hbm_capacity": "288 GB",
                         "hbm_bandwidth": "8 TB/s", "scale_up_bidirectional": "1800 GB/s",
                         "typical_nic": "800 Gb/s", "scale_up_domain": 8}, "num_gpus": 64},
        parallelism={"tp": 8, "dp": 8})
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_process_pool_map_matches_a_serial_loop():
    base = presets.get("megatron-gpt-1.7b")
    cfgs = [base, base.replace(**{"cluster.gpu": "H100-SXM"}), base.replace(**{"parallelism.micro_batch": 2})]
    serial = [costmodel.estimate(c) for c in cfgs]
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(costmodel.estimate, cfgs))
    assert [e.to_dict() for e in parallel] == [e.to_dict() for e in serial]


def test_models_pickle_without_our_application_registry():
    """Another library may set pint's application registry; configs and results still
    pickle, because they travel as their own JSON."""
    code = (
        "import pickle, pint, costmodel\n"
        "cfg = costmodel.presets.get('deepseek-v3')\n"
        "e = costmodel.estimate(cfg, pipeline='closed')\n"
        "pint.set_application_registry(pint.UnitRegistry())\n"
        "assert pickle.loads(pickle.dumps(cfg)) == cfg\n"
        "assert pickle.loads(pickle.dumps(e)).to_dict() == e.to_dict()\n"
        "assert pickle.loads(pickle.dumps(costmodel.gpu('GB200'))) == costmodel.gpu('GB200')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_errors_cross_a_process_pool():
    """A config that does not fit raises InfeasibleConfig in the caller, not BrokenProcessPool."""
    with ProcessPoolExecutor(max_workers=2) as pool:
        too_big = presets.get("deepseek-v3").replace(**{"parallelism.zero": 0})  # unsharded FP32 states
        futures = [pool.submit(costmodel.estimate, c) for c in (presets.get("megatron-gpt-1.7b"), too_big)]
        assert futures[0].result().fits
        with pytest.raises(InfeasibleConfig) as err:
            futures[1].result()
    assert err.value.needed > err.value.capacity
    for exc in (err.value, EstimateOutOfRange("step_time", float("inf")), UnknownName("GPU", "X9", ["H100-SXM"])):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
