"""Units as people type them in this domain (issue #7, item 8)."""

import pytest
import yaml

import costmodel
from costmodel import TrainingConfig, presets
from costmodel.units import parse, to_base


@pytest.mark.parametrize("text, kind, base", [
    ("15T tokens", "tokens", 15e12),
    ("15T", "tokens", 15e12),
    ("1.5B tokens", "tokens", 1.5e9),
    ("1.5 billion tokens", "tokens", 1.5e9),
    ("1.5e13", "tokens", 1.5e13),
    ("1.5e+13", "tokens", 1.5e13),
    ("14_800_000_000_000", "tokens", 14.8e12),
    ("400 Gb/s", "bandwidth", 50e9),
    ("400 Gbps", "bandwidth", 50e9),
    ("400 Gbit/s", "bandwidth", 50e9),
    ("50 GBps", "bandwidth", 50e9),
    ("50 GB/s", "bandwidth", 50e9),
    ("989 TFLOPS", "flop rate", 989e12),
    ("989 TFLOPs", "flop rate", 989e12),
    ("989 TFLOP/s", "flop rate", 989e12),
    ("2T FLOP/s", "flop rate", 2e12),
    ("$2/hour", "price per hour", 2 / 3600),
    ("$33,750", "money", 33750.0),
    ("$1.9B", "money", 1.9e9),
    ("80 B", "memory", 80.0),  # a byte, not a billion: a letter multiplier must touch its number
])
def test_domain_spellings(text, kind, base):
    assert to_base(parse(text, kind), kind) == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("text, kind, words", [
    ("400 gb/s", "bandwidth", ["Gbit/s", "GB/s"]),  # ambiguous case: suggest both spellings
    ("15 T tokens", "tokens", ["14.8T tokens"]),  # tesla: suggest the right spelling
    ("400", "bandwidth", ["with a unit"]),
    ("1.5e13", "bandwidth", ["with a unit"]),  # numeric text is a bare number, as 1.5e13 is
    ("0 GB/s", "bandwidth", ["positive"]),
    ("-1 USD", "money", ["zero or more"]),
])
def test_refusals_suggest_the_spelling(text, kind, words):
    with pytest.raises(ValueError) as err:
        parse(text, kind, field="f")
    for w in words:
        assert w in str(err.value)


def test_yaml_float_without_sign_is_a_token_count():
    doc = yaml.safe_load("tokens: 1.5e13")  # YAML 1.1 reads this as a string
    assert isinstance(doc["tokens"], str)
    cfg = presets.get("deepseek-v3").replace(**{"data.tokens": doc["tokens"], "data.batch_ramp": None})
    assert cfg.tokens == 1.5e13


def test_hbm_capacity_has_one_convention():
    """A user-defined clone of the H800 written with the datasheet's '80 GB' equals the
    catalogue entry, so it fits the same layout (JEDEC: memory-device GB are binary)."""
    h800 = costmodel.gpu("H800-SXM")
    clone = h800.model_dump()
    clone.update(name="my-h800", hbm_capacity="80 GB", aliases=())
    cfg = presets.get("deepseek-v3")
    mine = cfg.replace(**{"cluster.gpu": clone, "costs.priced_for": "my-h800"})
    assert mine.cluster.gpu.hbm_capacity == h800.hbm_capacity
    assert to_base(mine.cluster.gpu.hbm_capacity, "memory") == 80 * 2**30
    assert costmodel.estimate(mine).fits


def test_bare_numbers_treated_alike_for_fields_of_a_kind():
    base = dict(model="llama3-8b", data={"tokens": 1e12, "seq_len": 4096, "global_batch": 512},
                cluster={"gpu": "H100-SXM", "num_gpus": 64}, parallelism={"tp": 8, "dp": 8})
    for tokens in (1e12, "1e12", "1T", "1T tokens", "1e12 token"):
        cfg = TrainingConfig(**{**base, "data": {**base["data"], "tokens": tokens}})
        assert cfg.tokens == 1e12
    for field in ("scale_out_bandwidth", "scale_up_bandwidth"):
        for bare in (400, "400"):
            with pytest.raises(ValueError, match="with a unit"):
                TrainingConfig(**{**base, "cluster": {**base["cluster"], field: bare}})
