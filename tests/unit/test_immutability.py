"""Catalogue data and results cannot be changed in place (issue #7, item 1): an attempt
raises, and later estimates are unchanged."""

import copy

import pytest
from pydantic import ValidationError

import costmodel
from costmodel import presets
from costmodel.frozen import FrozenDict


@pytest.fixture(scope="module")
def v3_step():
    return costmodel.estimate(presets.get("deepseek-v3")).step_time.m


MUTATIONS = [
    ("peaks item", lambda g: g.peaks.__setitem__("fp8", costmodel.Q_(1e6, "TFLOP/s"))),
    ("achievable item", lambda g: g.achievable.__setitem__("fp8", costmodel.Q_(1e6, "TFLOP/s"))),
    ("peaks update", lambda g: g.peaks.update({"bf16": costmodel.Q_(1, "TFLOP/s")})),
    ("achievable pop", lambda g: g.achievable.pop("bf16")),
    ("peaks clear", lambda g: g.peaks.clear()),
    ("peaks del", lambda g: g.peaks.__delitem__("bf16")),
    ("peaks |=", lambda g: g.peaks.__ior__({"bf16": costmodel.Q_(1, "TFLOP/s")})),
    ("peaks setdefault", lambda g: g.peaks.setdefault("fp4", costmodel.Q_(1, "TFLOP/s"))),
    ("attribute", lambda g: setattr(g, "sms", 1)),
]


@pytest.mark.parametrize("what, mutate", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_catalogue_gpu_cannot_be_mutated(what, mutate, v3_step):
    for name in ("H800-SXM", "H100-SXM"):
        with pytest.raises((TypeError, AttributeError, ValidationError)):
            mutate(costmodel.gpu(name))
    assert costmodel.estimate(presets.get("deepseek-v3")).step_time.m == v3_step


def test_estimate_maps_cannot_be_mutated(v3_step):
    e = costmodel.estimate(presets.get("deepseek-v3"))
    attempts = [
        lambda: e.values.__setitem__("step_time", 1.0),
        lambda: e.breakdowns["step_breakdown"].__setitem__("compute", 0.0),
        lambda: e.breakdowns.__setitem__("step_breakdown", {}),
        lambda: e.step_breakdown.__setitem__("compute", 0.0),
        lambda: e.stage_times.__setitem__("f", 0.0),
        lambda: e.cost_basis.__setitem__("marginal", "free"),
        lambda: setattr(e, "mfu", 1.0),
        lambda: setattr(e, "values", {}),
    ]
    for attempt in attempts:
        with pytest.raises((TypeError, AttributeError)):
            attempt()
    assert e.step_time.m == v3_step


def test_configs_and_architectures_are_frozen():
    cfg = presets.get("deepseek-v3")
    for obj, field in ((cfg, "goodput"), (cfg.parallelism, "pp"), (cfg.model, "n_layers"), (cfg.costs, "pue")):
        with pytest.raises(ValidationError):
            setattr(obj, field, 2)


def test_frozen_dict_is_a_dict_that_copies_and_compares():
    d = FrozenDict({"a": {"b": 1}})
    assert isinstance(d, dict) and d == {"a": {"b": 1}}
    assert copy.copy(d) is d and copy.deepcopy(d) == d
    mutable = dict(d)
    mutable["c"] = 2  # a copy is the way to change it
    assert "c" not in d


def test_memoised_methods_give_each_caller_its_own_dict_and_compute_arrays():
    """``frozen.memo_method`` (an architecture's per-layer counts, a GPU's rates): a caller
    that changes the dict it got changes no later call's; an array argument is computed,
    not keyed; an int and a float argument are told apart; equality and hashing of the
    object are its fields' (the memo is not on the object); an error is raised each call."""
    import numpy as np

    arch = costmodel.models.get("deepseek-v3")
    first = arch.param_counts()
    first["embedding"] = -1
    first.pop("head")
    again = arch.param_counts()
    assert again["embedding"] > 0 and "head" in again
    assert arch.params_total == sum(again.values())
    flops = arch.layer_flops("moe", 4096)
    flops["attention_core"] = 0.0
    assert arch.layer_flops("moe", 4096)["attention_core"] > 0
    seq = np.array([1024, 4096])
    rows = arch.layer_flops("moe", seq)["attention_core"]  # rows of their own: computed
    assert rows.shape == (2,) and rows[1] == arch.layer_flops("moe", 4096)["attention_core"]
    assert rows[0] == arch.layer_flops("moe", 1024)["attention_core"]
    from costmodel import frozen

    arch.layer_flops("moe", 2048)
    arch.layer_flops("moe", 2048.0)
    keys = [k for k in frozen._MEMO if k[0] == id(arch) and k[2] in (("moe", 2048), ("moe", 2048.0))]
    assert sorted(k[4][1].__name__ for k in keys) == ["float", "int"]  # an int and a float kept apart
    copy_ = arch.model_copy()
    assert copy_ == arch and hash(copy_) == hash(arch)
    gpu = costmodel.gpu("H800-SXM")
    assert gpu.peak_flops("fp8") == gpu.peak_flops("fp8") == costmodel.units.to_base(gpu.peak("fp8"), "flop rate")
    from costmodel.workload import Architecture

    class Loose(Architecture):  # unfrozen: its results are never kept
        model_config = {**Architecture.model_config, "frozen": False}

    loose = Loose(**arch.model_dump())
    before = loose.param_counts()["embedding"]
    loose.vocab_size *= 2
    assert loose.param_counts()["embedding"] == 2 * before
    with pytest.raises(costmodel.errors.UnsupportedPrecision):  # an error is raised again, never kept
        costmodel.gpu("A100-SXM-80GB").peak_flops("fp8")
    with pytest.raises(costmodel.errors.UnsupportedPrecision):
        costmodel.gpu("A100-SXM-80GB").peak_flops("fp8")


def test_memoised_functions_of_a_model_take_any_object_and_keep_modules_apart():
    """``frozen.memo_method`` on a module function whose first argument is a model (an
    architecture's GEMM and elementwise bytes per token): an object that is not a frozen
    model (a namespace with the model's fields) is computed, as before the memo; two
    functions of the same name in different modules never share an entry."""
    import types

    from costmodel import compute, frozen

    arch = costmodel.models.get("deepseek-v3")
    fields = {k: getattr(arch, k) for k in type(arch).model_fields}
    ns = types.SimpleNamespace(**fields, n_dense_layers=arch.n_dense_layers, n_moe_layers=arch.n_moe_layers)
    assert compute.elementwise_bytes(ns, "moe", "fp8") == compute.elementwise_bytes(arch, "moe", "fp8")
    assert compute.gemm_io_bytes(ns, "moe", 4096.0, 1, 64, "fp8") == compute.gemm_io_bytes(arch, "moe", 4096.0, 1, 64,
                                                                                          "fp8")
    assert not any(k[0] == id(ns) for k in frozen._MEMO)

    def twin(module):
        def f(model, x):
            return (module, x)
        f.__module__, f.__qualname__ = module, "f"
        return frozen.memo_method(f)

    a, b = twin("one"), twin("two")
    assert a(arch, 1) == ("one", 1) and b(arch, 1) == ("two", 1)


def test_record_builds_the_dataclass_it_replaces_the_init_of():
    # frozen.record's __init__ takes the dataclass's own parameters and defaults, and the
    # instance is the same frozen, comparable, hashable, picklable record
    import dataclasses
    import inspect
    import pickle

    from costmodel.frozen import record
    from costmodel.network import Link
    from costmodel.stages import Work

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: float
        b: object = 2.0
        c: str = "x"

    @record
    @dataclasses.dataclass(frozen=True)
    class Fast:
        a: float
        b: object = 2.0
        c: str = "x"

    assert str(inspect.signature(Fast)) == str(inspect.signature(Plain)) and Fast.__init__ is not Plain.__init__
    f = Fast(1.0, c="y")
    assert (f.a, f.b, f.c) == (1.0, 2.0, "y") and f == Fast(1.0, 2.0, "y") and hash(f) == hash(Fast(1.0, 2.0, "y"))
    assert pickle.loads(pickle.dumps(Work(1.0, 2.0, 3.0))) == Work(1.0, 2.0, 3.0)
    assert dataclasses.replace(Link(1.0, 2.0, "NVLink"), bandwidth=3.0) == Link(3.0, 2.0, "NVLink")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.a = 2.0
    with pytest.raises(TypeError, match="missing"):
        Work(1.0)
    with pytest.raises(TypeError, match="needs its dataclass __init__"):
        @record
        @dataclasses.dataclass(frozen=True)
        class Checked:
            a: float

            def __post_init__(self):
                pass
    for extra in (dataclasses.field(default=1.0, kw_only=True), dataclasses.field(default=1.0, init=False),
                  dataclasses.field(default_factory=list)):
        with pytest.raises(TypeError, match="needs its dataclass __init__"):
            record(dataclasses.make_dataclass("Odd", [("a", float), ("b", object, extra)], frozen=True))
