"""costmodel.Program, estimate_program and costmodel.programs (issue #11)."""

import math

import pydantic
import pytest

import costmodel
from costmodel.program import Fleet, FleetGroup, Program, Stage, estimate_program


def _small_program(**kw):
    cfg = costmodel.presets.get("megatron-gpt-1.7b").replace(**{"costs.gpu_hour_price": "neocloud",
                                                                 "cluster.gpu": "H100-SXM"})
    body = dict(name="small", stages=[Stage(name="pre-training", config=cfg),
                                      Stage(name="post-training", gpu_hours=1000.0, source="a test figure")],
                fleet=Fleet(groups=[FleetGroup(gpu="H100-SXM", count=[cfg.cluster.num_gpus, 4 * cfg.cluster.num_gpus])],
                            interconnect_per_gpu="4390 USD", utilisation=0.9))
    body.update(kw)
    return Program(**body)


def test_ledgers_sum_to_their_totals_and_fixed_stages_take_the_config_stage_price():
    b = estimate_program(_small_program())
    e = b.stages["pre-training"]
    price = costmodel.prices.rental("H100-SXM", "neocloud").value
    lines = {x.name: x for x in b.lines}
    assert lines["pre-training"].low == pytest.approx(e.marginal_cost.to("USD").m, rel=1e-12)
    assert lines["post-training"].low == pytest.approx(1000.0 * price, rel=1e-12)
    assert b.marginal_cost.to("USD").m == pytest.approx(sum(x.low for x in b.lines if x.ledger == "marginal"))
    assert b.gpu_hours.to("hour").m == pytest.approx(e.gpu_hours.to("hour").m + 1000.0)
    lo, hi = b.total("capital")
    n = e.config.cluster.num_gpus
    assert lo == pytest.approx(n * (costmodel.prices.purchase("H100-SXM").value + 4390.0))
    assert hi == pytest.approx(4 * lo)
    assert b.fleet_gpus == (n, 4 * n)
    life_hours = 5 * 8766 * 0.9
    assert b.fleet_share == pytest.approx((b.gpu_hours.m / (4 * n * life_hours), b.gpu_hours.m / (n * life_hours)))


def test_energy_per_year_follows_the_epoch_formula():
    b = estimate_program(_small_program())
    g = costmodel.gpu("H100-SXM")
    per_gpu = g.tdp.to("W").m / 1000 * g.server_power_multiplier * 0.75 * 1.25 * 8766 * 0.9 * 0.0826
    energy = next(x for x in b.lines if x.name == "energy")
    assert energy.low == pytest.approx(b.fleet_gpus[0] * per_gpu, rel=1e-9)
    assert energy.high == pytest.approx(b.fleet_gpus[1] * per_gpu, rel=1e-9)


def test_fleet_cost_share_prices_the_programs_hours_at_each_fleets_own_cost():
    # each end pairs a fleet with its own share: hours x (capital + running x life) / fleet hours
    b = estimate_program(_small_program())
    life, util, h = 5.0, 0.9, b.gpu_hours.to("hour").m
    (c_lo, c_hi), (r_lo, r_hi) = b.total("capital"), b.total("running per year")
    (n_lo, n_hi) = b.fleet_gpus
    small = h * (c_lo + r_lo * life) / (n_lo * life * 8766 * util)
    large = h * (c_hi + r_hi * life) / (n_hi * life * 8766 * util)
    lo, hi = (x.to("USD").m for x in b.fleet_cost_share)
    assert (lo, hi) == (pytest.approx(min(small, large)), pytest.approx(max(small, large)))
    # one GPU kind at one price: the cost per GPU-hour is the same at both ends
    assert lo == pytest.approx(hi, rel=1e-9)


def test_a_fixed_stage_is_priced_on_its_own_gpu():
    cfg = costmodel.presets.get("megatron-gpt-1.7b").replace(**{"cluster.gpu": "A100-SXM-80GB"})
    fixed = Stage(name="fixed", gpu_hours=1e6, source="s", gpu="H100-SXM")
    p = Program(name="x", gpu_hour_price="hyperscaler-on-demand", stages=[fixed])
    q = p.add(Stage(name="small", config=cfg))
    on_demand = costmodel.prices.rental("H100-SXM", "hyperscaler-on-demand").value
    for prog in (p, q):
        line = next(x for x in estimate_program(prog).lines if x.name == "fixed")
        assert line.low == pytest.approx(1e6 * on_demand)
    with pytest.raises(pydantic.ValidationError, match="no 'hyperscaler-committed' market for H200"):
        Program(name="x", gpu_hour_price="hyperscaler-committed",
                stages=[Stage(name="f", gpu_hours=10.0, source="s", gpu="H200")])


def test_research_multiple_is_a_line_on_the_stages_cost_and_needs_a_source():
    with pytest.raises(pydantic.ValidationError, match="research_multiple=2 needs a research_source"):
        _small_program(research_multiple=2.0)
    b = estimate_program(_small_program(research_multiple=2.0, research_source="a test multiple"))
    stages = sum(x.low for x in b.lines if x.ledger == "marginal" and x.name != "research compute")
    assert next(x for x in b.lines if x.name == "research compute").low == pytest.approx(2.0 * stages)


def test_invalid_programs_are_refused_naming_the_rule():
    cfg = costmodel.presets.get("megatron-gpt-1.7b")
    with pytest.raises(pydantic.ValidationError, match="give either config .* or gpu_hours .*; got both"):
        Stage(name="x", config=cfg, gpu_hours=10.0, source="s")
    with pytest.raises(pydantic.ValidationError, match="got neither"):
        Stage(name="x")
    with pytest.raises(pydantic.ValidationError, match="need a source"):
        Stage(name="x", gpu_hours=10.0)
    with pytest.raises(pydantic.ValidationError, match="names must be unique"):
        Program(name="p", stages=[Stage(name="a", config=cfg), Stage(name="a", config=cfg)])
    with pytest.raises(pydantic.ValidationError, match="name of a ledger line"):
        Program(name="p", stages=[Stage(name="energy", config=cfg)])
    with pytest.raises(pydantic.ValidationError, match=r"\[low, high\] range"):
        FleetGroup(gpu="H100-SXM", count=[10, 5])
    with pytest.raises(pydantic.ValidationError, match="no purchase price for MI300X"):
        FleetGroup(gpu="MI300X", count=8)
    with pytest.raises(pydantic.ValidationError, match="unknown GPU"):
        FleetGroup(gpu="H1000", count=8)
    for bad in (10.5, "100", [1, 2, 3], 10**400, [5, -1], True):
        with pytest.raises(pydantic.ValidationError, match=r"count: must be a whole number of GPUs"):
            FleetGroup(gpu="H100-SXM", count=bad)
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        FleetGroup(gpu="H100-SXM", count=8, gpu_price="30000 USD", server_overhead=float("inf"))
    with pytest.raises(pydantic.ValidationError, match="no overhead applies"):
        FleetGroup(gpu="H100-SXM", count=8, server_overhead=1.5)
    with pytest.raises(pydantic.ValidationError, match="a config stage runs on its config's cluster.gpu"):
        Stage(name="x", config=cfg, gpu="A100-SXM-80GB")
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 1000000000000000"):
        Stage(name="x", gpu_hours=1e308, source="s")


def test_bands_are_ordered_reproducible_and_hold_the_point_when_priors_collapse():
    p = _small_program()
    a = estimate_program(p, samples=300, seed=3)
    b = estimate_program(p, samples=300, seed=3)
    assert a.bands == b.bands
    for lo, mid, hi in a.bands.values():
        assert lo <= mid <= hi and all(math.isfinite(x) for x in (lo, mid, hi))
    from costmodel.config import DEFAULT_COMPUTE_EFFICIENCY, HBM_EFFICIENCY

    fixed = {"efficiency.compute": {"dist": "fixed", "value": DEFAULT_COMPUTE_EFFICIENCY}, "efficiency.nvlink": 1.0,
             "efficiency.hbm": HBM_EFFICIENCY,
             "efficiency.scale_out": 1.0, "goodput": 1.0,
             "costs.gpu_hour_price": {"dist": "fixed", "value": costmodel.prices.rental("H100-SXM", "neocloud").value}}
    cfg = p.stages[0].config
    cfg = cfg.replace(**{"uncertainty": fixed, "efficiency.nvlink": 1.0, "efficiency.scale_out": 1.0})
    q = _small_program(stages=[Stage(name="pre-training", config=cfg)])
    c = estimate_program(q, samples=50)
    point = estimate_program(q)
    assert c.bands["gpu_hours"][1] == pytest.approx(point.gpu_hours.m, rel=1e-9)
    assert c.bands["marginal_cost"][1] == pytest.approx(point.marginal_cost.m, rel=1e-9)


def test_the_deepseek_v3_program_is_catalogued_with_its_sources():
    info = costmodel.programs.info("deepseek-v3")
    p = info.program
    assert [s.name for s in p.stages] == ["pre-training", "context extension 32K", "context extension 128K",
                                          "post-training"]
    assert p.stages[0].config == costmodel.presets.get("deepseek-v3")
    ext = p.stages[2].config
    assert (ext.data.seq_len, ext.data.global_batch, ext.parallelism.tp) == (131072, 480, 1)
    assert p.stages[3].gpu_hours == 5000.0 and "Table 1" in p.stages[3].source
    assert p.fleet.gpus == (2048, 50000)
    assert "SemiAnalysis" in info.source and info.assumptions
    with pytest.raises(costmodel.UnknownName, match="unknown program 'gpt-5'"):
        costmodel.programs.get("gpt-5")


def test_cli_program_prints_three_ledgers(capsys):
    from costmodel.cli import main

    assert main(["program", "deepseek-v3"]) == 0
    out = capsys.readouterr().out
    for text in ("marginal ledger", "capital ledger", "running per year ledger", "context extension 128K",
                 "2,048 to 50,000"):
        assert text in out


def test_a_fleet_of_no_gpus_is_refused():
    with pytest.raises(pydantic.ValidationError, match="least count must be at least one GPU"):
        Fleet(groups=[FleetGroup(gpu="H100-SXM", count=[0, 10])])


def test_fixed_stage_bands_follow_the_config_stages_draws_and_their_overrides():
    cfg = costmodel.presets.get("megatron-gpt-1.7b").replace(**{"cluster.gpu": "H100-SXM",
                                                                "costs.gpu_hour_price": "2 USD/hour"})
    fixed = Stage(name="post", gpu_hours=1000.0, source="s")
    b = estimate_program(Program(name="p", stages=[Stage(name="pre", config=cfg), fixed]), samples=200)
    lo, mid, hi = next(x for x in b.lines if x.name == "post").band
    assert 2000 < lo < mid < hi <= 4000  # the pinned $2 sampled over its market, as the config stage's
    assert any("pinned 2 is sampled over the neocloud market" in n for n in b.notes)
    held = cfg.replace(uncertainty={"costs.gpu_hour_price": 2.0})
    c = estimate_program(Program(name="p", stages=[Stage(name="pre", config=held), fixed]), samples=200)
    assert next(x for x in c.lines if x.name == "post").band == (2000.0, 2000.0, 2000.0)
    # on another GPU, the inherited pinned price is used as given and said so
    other = Stage(name="post", gpu_hours=1000.0, source="s", gpu="A100-SXM-80GB")
    d = estimate_program(Program(name="p", stages=[Stage(name="pre", config=cfg), other]), samples=50)
    assert next(x for x in d.lines if x.name == "post").band == (2000.0, 2000.0, 2000.0)
    assert any("set for H100-SXM, used as given on A100-SXM-80GB" in n for n in d.notes)


def test_a_program_from_a_file_in_each_format(tmp_path, capsys):
    import json

    import yaml

    from costmodel.cli import main

    body = {"name": "my-lab", "source": "a test", "gpu_hour_price": "neocloud",
            "stages": [{"name": "pre", "preset": "megatron-gpt-1.7b", "changes": {"cluster.gpu": "H100-SXM"}},
                       {"name": "ablations", "gpu_hours": 2000.0, "gpu": "H100-SXM", "source": "ours"}],
            "fleet": {"groups": [{"gpu": "H100-SXM", "count": [64, 128]}]}}
    ref = costmodel.programs.from_dict(body).program
    (tmp_path / "p.json").write_text(json.dumps(body))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(body))
    toml = tmp_path / "p.toml"
    toml.write_text('name = "my-lab"\nsource = "a test"\ngpu_hour_price = "neocloud"\n'
                    '[[stage]]\nname = "pre"\npreset = "megatron-gpt-1.7b"\nchanges = { "cluster.gpu" = "H100-SXM" }\n'
                    '[[stage]]\nname = "ablations"\ngpu_hours = 2000.0\ngpu = "H100-SXM"\nsource = "ours"\n'
                    '[fleet]\n[[fleet.groups]]\ngpu = "H100-SXM"\ncount = [64, 128]\n')
    for path in ("p.json", "p.yaml", "p.toml"):
        assert costmodel.programs.from_file(tmp_path / path).program == ref
    assert main(["program", str(toml)]) == 0 and "ablations" in capsys.readouterr().out
    with pytest.raises(ValueError, match="changes apply to a preset"):
        costmodel.programs.from_dict({"name": "x", "stages": [{"name": "a", "changes": {"goodput": 0.9}}]})
    with pytest.raises(ValueError, match="needs its stages"):
        costmodel.programs.from_dict({"name": "x"})
    with pytest.raises(ValueError, match="must end in"):
        costmodel.programs.from_file(tmp_path / "p.txt")


# ------------------------------------------------- an independent review's findings (issue #11)

def test_toml_dotted_keys_in_changes_change_one_field_and_an_empty_table_removes_one(tmp_path):
    """TOML parses ``costs.gpu_hour_price = ...`` as a table under ``costs``: it changes that
    price and keeps the preset's others (it used to replace the whole section, silently
    dropping V3's server and interconnect prices); ``data.batch_ramp = {}`` removes the ramp."""
    toml = tmp_path / "p.toml"
    toml.write_text('name = "dotted"\n[[stage]]\nname = "pre"\npreset = "deepseek-v3"\n[stage.changes]\n'
                    'costs.gpu_hour_price = "neocloud"\ndata.batch_ramp = {}\n')
    cfg = costmodel.programs.from_file(toml).program.stages[0].config
    v3 = costmodel.presets.get("deepseek-v3")
    assert cfg.costs.gpu_hour_price == "neocloud"
    assert cfg.costs.gpu_price == v3.costs.gpu_price and cfg.costs.interconnect_per_gpu == v3.costs.interconnect_per_gpu
    assert cfg.data.batch_ramp is None and cfg.data.tokens == v3.data.tokens
    deep = tmp_path / "deep.toml"  # at any depth where the preset holds fields (found by review)
    deep.write_text('name = "deep"\n[[stage]]\nname = "pre"\npreset = "deepseek-v3"\n[stage.changes]\n'
                    'model.n_layers = 30\ncluster.gpu.tdp = "800 W"\ndata.batch_ramp.start = 1000\n')
    cfg = costmodel.programs.from_file(deep).program.stages[0].config
    assert (cfg.model.n_layers, cfg.cluster.gpu.tdp.m, cfg.data.batch_ramp.start) == (30, 800, 1000)
    assert cfg.model.hidden == v3.model.hidden and cfg.data.batch_ramp.tokens == v3.data.batch_ramp.tokens


@pytest.mark.parametrize("body, match", [
    ({"name": "x", "stages": [5]}, r"stages\[0\]: a stage is a mapping"),
    ({"name": "x", "stages": ["abc"]}, r"stages\[0\]: a stage is a mapping"),
    ({"name": "x", "stages": [{"name": "a", "preset": "deepseek-v3", "changes": ["x"]}]}, "changes must be a mapping"),
    ({"name": "x", "stages": [{"name": "a", "preset": "deepseek-v3", "changes": {"parallelism.tp": 3}}]},
     "stage 'a': parallelism.tp"),
    ({"name": "x", "stages": [{"name": "a", "gpu_hours": 1.0, "source": "s", "gpu": "H100-SXM"}], "assumptions": 5},
     "assumptions: a list of sentences"),
    ({"name": "x", "stage": [{"name": "a", "gpu_hours": 1.0, "source": "s", "gpu": "H100-SXM"}],
      "stages": [{"name": "b", "gpu_hours": 1.0, "source": "s", "gpu": "H100-SXM"}]}, "not both"),
    ({"name": "x", "stages": [{"name": "a", "gpu_hours": 1.0, "source": "s", "gpu": "H100-SXM"}],
      "fleet": {"groups": [{"gpu": "H100-SXM", "count": [0, 0]}]}}, r"fleet.groups\[0\] \(H100-SXM\): count"),
])
def test_malformed_program_files_are_refused_naming_the_field(body, match):
    with pytest.raises(ValueError, match=match):
        costmodel.programs.from_dict(body)


def test_a_stage_that_does_not_fit_is_named():
    body = {"name": "x", "stages": [{"name": "bf16", "preset": "deepseek-v3", "changes": {"precision.gemm": "bf16"}}]}
    with pytest.raises(costmodel.InfeasibleConfig, match=r"does not fit \(stage 'bf16'\)"):
        estimate_program(costmodel.programs.from_dict(body).program)


def test_groups_of_one_gpu_are_lines_of_their_own_with_their_own_bands():
    """Two H100 groups used to share one band (the second overwrote the first's samples)."""
    p = _small_program(fleet=Fleet(groups=[FleetGroup(gpu="H100-SXM", count=[1000, 2000]),
                                           FleetGroup(gpu="H100-SXM", count=500, gpu_price="30000 USD")]))
    b = estimate_program(p, samples=200)
    lines = {x.name: x for x in b.lines if x.ledger == "capital"}
    assert {"H100-SXM #1 servers", "H100-SXM #2 servers"} <= set(lines)
    for x in lines.values():
        if x.band is not None and x.name != "facility":
            assert x.low * 0.5 <= x.band[1] <= x.high * 1.5  # each band is its own line's
    assert lines["H100-SXM #1 servers"].band != lines["H100-SXM #2 servers"].band


def test_research_compute_with_no_priced_stage_is_not_a_zero_cost():
    cfg = costmodel.presets.get("megatron-gpt-1.7b")  # no prices
    p = Program(name="x", stages=[Stage(name="a", config=cfg)], research_multiple=1.2, research_source="r")
    b = estimate_program(p)
    assert b.marginal_cost is None
    assert any("no stage is priced" in n for n in b.notes)


def test_totals_beyond_float_range_are_refused_not_a_traceback():
    p = _small_program(fleet=Fleet(groups=[FleetGroup(gpu="H100-SXM", count=[1, 100_000_000], gpu_price="1.5e300 USD",
                                                      server_overhead=1.0)] * 2))
    with pytest.raises(costmodel.EstimateOutOfRange):
        estimate_program(p)
