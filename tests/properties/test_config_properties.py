"""Properties of configs: valid by construction, every invalid value refused by name."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from costmodel import TrainingConfig, presets
from costmodel.testing import constrained_fields, invalid_assignments, training_configs


@given(training_configs())
def test_generated_configs_satisfy_the_world_size_rule(cfg):
    p = cfg.parallelism
    assert p.tp * p.pp * p.dp * p.cp == cfg.cluster.num_gpus
    assert cfg.microbatches * p.micro_batch * p.dp == cfg.data.global_batch


@given(training_configs())
def test_json_round_trip(cfg):
    assert TrainingConfig.from_json(cfg.to_json()) == cfg
    json.loads(cfg.to_json())  # plain JSON


@given(training_configs(), st.sampled_from(["yaml", "toml"]))
def test_text_round_trip(cfg, fmt):
    assert getattr(TrainingConfig, f"from_{fmt}")(getattr(cfg, f"to_{fmt}")()) == cfg


@given(invalid_assignments())
def test_every_invalid_value_of_every_constrained_field_is_refused_by_name(assignment):
    path, value = assignment
    with pytest.raises(ValidationError) as err:
        presets.get("deepseek-v3").replace(**{path: value})
    assert path in str(err.value), str(err.value)


def test_every_constrained_field_is_covered():
    # The introspection must see every rule-bearing field; a field added without being found
    # here would escape the property above.
    paths = {p for p, _, _ in constrained_fields()}
    for expected in ["data.tokens", "data.seq_len", "data.batch_ramp.start", "cluster.num_gpus",
                     "cluster.scale_out_bandwidth", "parallelism.tp", "parallelism.zero",
                     "parallelism.schedule", "precision.gemm", "costs.gpu_hour_price", "goodput"]:
        assert expected in paths
    assert len(paths) == 44


@given(training_configs(), st.sampled_from(["parallelism.pp", "parallelism.dp", "parallelism.tp"]),
       st.integers(2, 4))
def test_replace_revalidates(cfg, path, factor):
    # Scaling one degree without the GPU count breaks the world-size rule, always.
    value = getattr(cfg.parallelism, path.split(".")[1]) * factor
    with pytest.raises(ValidationError):
        cfg.replace(**{path: value})
