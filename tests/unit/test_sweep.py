"""costmodel.sweep and costmodel.search: rows, reasons, derived dp, tables, best and
Pareto rows, executors, and the search's exactness against a brute-force sweep."""

import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel
from costmodel import presets
from costmodel.cli import main
from costmodel.sweeps import RowColumns

V3 = presets.get("deepseek-v3")
AXES = {"parallelism.pp": [4, 8, 16], "cluster.gpu": ["H100-SXM", "H800-SXM"], "parallelism.micro_batch": [1, 2]}


@pytest.fixture(scope="module")
def v3_sweep():
    return costmodel.sweep(V3, AXES)


def test_rows_are_the_cartesian_product_with_dp_derived(v3_sweep):
    s = v3_sweep
    assert len(s) == 12
    assert [s.axis_values(i)["parallelism.pp"] for i in (0, 4, 8)] == [4, 8, 16]
    # dp = num_gpus / (tp * pp * cp) when pp varies and dp is no axis
    assert [s.axis_values(i)["parallelism.dp"] for i in (0, 4, 8)] == [512, 256, 128]
    assert s.config(10) == V3  # pp 16 on H800 with one sequence per micro-batch: the published layout


def test_the_published_row_is_the_estimate(v3_sweep):
    i = 10
    assert v3_sweep.status_of(i) == "ok"
    assert v3_sweep.estimate(i).step_time.m == pytest.approx(costmodel.estimate(V3).step_time.m, rel=1e-12)


def test_refused_rows_give_the_configs_own_message(v3_sweep):
    s = v3_sweep
    refused = [i for i in range(len(s)) if s.status_of(i) == "refused"]
    assert refused
    for i in refused:
        with pytest.raises(ValueError) as exc:
            s.config(i)
        assert s.reason(i) in str(exc.value)
        assert "dualpipe" in s.reason(i)


def test_rows_that_do_not_fit_say_so_with_their_memory(v3_sweep):
    s = v3_sweep
    i = next(i for i in range(len(s)) if s.status_of(i) == "does not fit")
    e = s.estimate(i)
    assert not e.fits
    assert f"{e.memory_per_gpu.m:.1f} GB" in s.reason(i)


def test_a_dp_that_is_not_whole_is_refused_by_the_world_size_rule():
    s = costmodel.sweep(V3, {"parallelism.cp": [1, 3]})
    assert s.status_of(0) == "ok" and s.status_of(1) == "refused"
    assert "must equal cluster.num_gpus=2048" in s.reason(1)


def test_table_best_and_pareto(v3_sweep):
    pd = pytest.importorskip("pandas")
    df = v3_sweep.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 12
    for col in ("parallelism.pp", "cluster.gpu", "status", "reason", "step_time [s]", "wall_time [day]",
                "gpu_hours [hour]", "mfu", "memory_per_gpu [GB]", "marginal_cost [USD]", "capital_cost [USD]"):
        assert col in df.columns
    best = v3_sweep.best("time")
    ok = df[df.status == "ok"]
    assert best.results["step_time"] == pytest.approx(ok["step_time [s]"].min())
    front = v3_sweep.pareto(["time", "memory"])
    assert 1 <= len(front) <= len(ok)
    with pytest.raises(ValueError, match="objective"):
        v3_sweep.best("speed")


def test_bad_axes_are_refused_with_the_path():
    with pytest.raises(ValueError, match="'parallelism.tpp' is not a field"):
        costmodel.sweep(V3, {"parallelism.tpp": [1]})
    with pytest.raises(ValueError, match="at least one value"):
        costmodel.sweep(V3, {"parallelism.tp": []})
    with pytest.raises(ValueError, match="pipeline"):
        costmodel.sweep(V3, {"parallelism.tp": [1]}, pipeline="fast")
    s = costmodel.sweep(V3, {"parallelism.tp": [0, 1.5]})
    assert [s.reason(i) for i in range(2)] == ["parallelism.tp: Input should be greater than 0; got 0",
                                               "parallelism.tp: Input should be a valid integer; got 1.5"]


def _same(a, b):
    assert np.array_equal(a.status, b.status)
    for k in a.results:
        np.testing.assert_array_equal(a.results[k], b.results[k])
    for name in a.breakdowns:
        for k in a.breakdowns[name]:
            np.testing.assert_array_equal(a.breakdowns[name][k], b.breakdowns[name][k])


def test_a_process_pool_gives_the_serial_results(v3_sweep, monkeypatch):
    monkeypatch.setattr("costmodel.sweeps.CHUNK_ROWS", 2)  # several chunks per group
    serial = costmodel.sweep(V3, AXES)
    with ProcessPoolExecutor(2) as pool:
        _same(serial, costmodel.sweep(V3, AXES, executor=pool))
    _same(serial, v3_sweep)


def test_a_local_dask_cluster_gives_the_serial_results(v3_sweep):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        _same(v3_sweep, costmodel.sweep(V3, AXES, executor=client.get_executor()))


# ---------------------------------------------------------------------------- search

SPACE = {"parallelism.pp": [4, 8, 16], "parallelism.ep": [32, 64], "parallelism.micro_batch": [1, 2],
         "parallelism.schedule": ["1f1b", "dualpipe", "dualpipev"], "parallelism.virtual_stages": None,
         "parallelism.zero": [1], "parallelism.recompute": ["mla-up-proj", "full"], "parallelism.cp": [1],
         "parallelism.tp": [1, 2], "parallelism.comm_sms": [20]}


def test_search_ranks_exactly_as_a_brute_force_sweep():
    top = costmodel.search(V3, space=SPACE, top=5)
    axes = {k: v for k, v in SPACE.items() if v is not None}
    brute = costmodel.sweep(V3, axes)
    ranked = brute.ranked("time")
    assert [top.results["step_time"][i] for i in range(len(top))] == pytest.approx(
        [brute.results["step_time"][i] for i in ranked[:5]], rel=1e-12)
    assert top.info["rank_of_config"] == int(np.flatnonzero(
        [brute.config(i) == V3 for i in ranked])[0]) + 1
    assert top.info["exact"] < top.info["valid"]  # bounds spared the simulator most rows


def test_search_objectives_and_arguments():
    mem = costmodel.search(V3, space=SPACE, top=3, objective="memory")
    m = mem.results["memory_per_gpu"]
    assert list(m) == sorted(m)
    with pytest.raises(ValueError, match="objective"):
        costmodel.search(V3, objective="speed")
    with pytest.raises(ValueError, match="top"):
        costmodel.search(V3, top=0)


# ---------------------------------------------------------------------------- CLI


def test_cli_sweep_table_csv_and_json(tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert main(["sweep", "deepseek-v3", "--axis", "parallelism.pp=8,16", "--axis",
                 "cluster.gpu=H100-SXM,H800-SXM", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fastest that fits" in text and "H800-SXM" in text
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("parallelism.pp,cluster.gpu,parallelism.dp,status,reason")
    assert main(["sweep", "deepseek-v3", "--axis", "parallelism.pp=16", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["status"] == "ok"
    assert rows[0]["step_time [s]"] == pytest.approx(costmodel.estimate(V3).step_time.to("s").m, rel=1e-9)
    assert main(["sweep", "deepseek-v3", "--axis", "parallelism.pp"]) == 2


def test_cli_search_prints_the_published_rank(capsys):
    assert main(["search", "deepseek-v3", "--top", "3", "--axis", "parallelism.pp=8,16", "--axis",
                 "parallelism.zero=1", "--axis", "parallelism.cp=1", "--axis", "parallelism.micro_batch=1"]) == 0
    text = capsys.readouterr().out
    assert "rank" in text and "the config's own layout ranks" in text
    with pytest.raises(SystemExit) as exit_:
        main(["search", "deepseek-v3", "--objective", "speed"])
    assert exit_.value.code == 2


# ---------------------------------------------------------------------------- review cases


def test_a_ramp_rule_comes_before_a_later_sections_error():
    # the data section is checked before the cluster's: the config reports the ramp
    from costmodel.rules import reason_of
    s = costmodel.sweep(V3, {"data.global_batch": [2048], "cluster.gpu": ["NOPE"]})
    with pytest.raises(ValueError) as exc:
        s.config(0)
    assert s.reason(0) == reason_of(exc.value) and "batch_ramp.start" in s.reason(0)


def test_out_of_range_rows_say_why_and_carry_no_numbers():
    s = costmodel.sweep(V3, {"costs.gpu_hour_price": ["2 USD/hour", "1e308 USD/hour"]})
    assert s.status_of(0) == "ok" and s.status_of(1) == "out of range"
    assert "marginal_cost" in s.reason(1)
    assert np.isnan(s.results["step_time"][1]) and np.isnan(s.results["marginal_cost"][1])
    with pytest.raises(costmodel.EstimateOutOfRange):
        costmodel.estimate(s.config(1))
    assert json.loads(json.dumps(s.to_records()))[1]["marginal_cost [USD]"] is None


SMALL = {"parallelism.pp": [4, 8, 16], "parallelism.ep": [32, 64], "parallelism.micro_batch": [1, 2],
         "parallelism.schedule": ["1f1b", "dualpipe"], "parallelism.virtual_stages": None,
         "parallelism.zero": [1, 2], "parallelism.recompute": ["mla-up-proj", "full"], "parallelism.cp": [1],
         "parallelism.tp": [1], "parallelism.comm_sms": [20]}


@pytest.mark.parametrize("objective", ["time", "cost", "memory"])
@pytest.mark.parametrize("head", [None, 3])
def test_search_is_exact_for_every_objective(objective, head, monkeypatch):
    if head is not None:  # the candidates sorted a few at a time, as V3's full space is: the same search
        whole = costmodel.search(V3, space=SMALL, top=4, objective=objective)
        monkeypatch.setattr("costmodel.layouts.ORDER_HEAD", head)
    top = costmodel.search(V3, space=SMALL, top=4, objective=objective)
    if head is not None:
        keys = ("exact", "placement_bounded", "bounded_out", "rank_of_config", "rank_of_config_range")
        assert [top.info[k] for k in keys] == [whole.info[k] for k in keys]
        assert np.array_equal(top.info["pareto"].results["step_time"], whole.info["pareto"].results["step_time"])
    brute = costmodel.sweep(V3, {k: v for k, v in SMALL.items() if v is not None})
    ranked = brute.ranked(objective)
    col = {"time": "step_time", "cost": "marginal_cost", "memory": "memory_per_gpu"}[objective]
    assert list(top.results[col]) == pytest.approx([brute.results[col][i] for i in ranked[:4]], rel=1e-12)
    own = int(np.flatnonzero([brute.config(i) == V3 for i in ranked])[0]) + 1
    assert top.info["rank_of_config"] == own


def test_search_bounds_follow_a_cluster_axis():
    # a GPU with more HBM fits where the config's does not; the config's own GPU is found by name
    space = {**SMALL, "cluster.gpu": ["H800-SXM", "B200"], "parallelism.pp": [4, 16]}
    top = costmodel.search(V3, space=space, top=3, objective="memory")
    brute = costmodel.sweep(V3, {k: v for k, v in space.items() if v is not None})
    ranked = brute.ranked("memory")
    assert list(top.results["memory_per_gpu"]) == pytest.approx([brute.results["memory_per_gpu"][i]
                                                                 for i in ranked[:3]], rel=1e-12)
    assert top.info["rank_of_config"] is not None


def test_search_without_axes_is_the_config():
    space = {p: None for p in costmodel.layouts.layout_space(V3)}
    r = costmodel.search(V3, space=space, top=3)
    assert len(r) == 1 and r.info["rank_of_config"] == 1
    assert r.results["step_time"][0] == pytest.approx(costmodel.estimate(V3).step_time.m, rel=1e-12)


def test_a_progress_bar_when_asked_and_none_by_default(capsys):
    costmodel.sweep(V3, {"parallelism.pp": [8, 16]}, progress=True)
    assert "sweep" in capsys.readouterr().err
    costmodel.sweep(V3, {"parallelism.pp": [8, 16]})
    assert capsys.readouterr().err == ""


def test_search_bounds_use_each_rows_gpu():
    # review case: on H100 this layout does not fit, on B200 it does; bounding every row by the
    # config's own GPU's HBM left nothing to return
    cfg = presets.get("llama3-405b")
    space = {"parallelism.tp": [8], "parallelism.pp": [8], "parallelism.zero": [0], "parallelism.recompute": ["full"],
             "parallelism.micro_batch": [1], "parallelism.cp": [1], "parallelism.schedule": ["1f1b"],
             "parallelism.virtual_stages": [1], "cluster.gpu": ["H100-SXM", "B200"]}
    top = costmodel.search(cfg, space=space, top=2)
    brute = costmodel.sweep(cfg, {k: v for k, v in space.items() if v is not None})
    assert len(top) == len(brute.ranked("time")) >= 1
    assert top.results["step_time"][0] == pytest.approx(brute.results["step_time"][brute.ranked("time")[0]], rel=1e-12)


@pytest.mark.parametrize("schedule", ["1f1b", "interleaved", "zb1p", "gpipe"])
def test_rows_below_and_past_the_in_flight_count_equal_their_estimates(schedule):
    # the engine computes memory once per distinct row at the most micro-batches a rank
    # holds in flight, and per row only below it (engine._Group): rows of both kinds in one
    # chunk must each equal estimate() of their config
    cfg = presets.get("megatron-gpt-1.7b").replace(**{
        "parallelism.pp": 4, "parallelism.dp": 8, "parallelism.schedule": schedule,
        "parallelism.virtual_stages": 2 if schedule == "interleaved" else 1})
    gbs = [8 * m for m in (1, 2, 3, 4, 5, 8, 16)]  # 1-16 micro-batches per pipeline
    s = costmodel.sweep(cfg, {"data.global_batch": gbs})
    ok = np.flatnonzero(s.status == 0)  # the schedule's own rules refuse some counts
    assert ok.size >= 2 and ok[0] <= 3  # rows with 4 micro-batches or fewer, and more
    for i in ok:
        gb = gbs[i]
        ref = costmodel.estimate(cfg.replace(**{"data.global_batch": gb}), check=False)
        row = s.estimate(i)
        assert row.values["memory_per_gpu"] == pytest.approx(ref.values["memory_per_gpu"], rel=1e-12)
        assert row.breakdowns["memory_breakdown"] == pytest.approx(dict(ref.breakdowns["memory_breakdown"]), rel=1e-12)
        assert row.values["step_time"] == pytest.approx(ref.values["step_time"], rel=1e-12)


def test_changed_with_a_dump_leaves_the_dump_as_it_was():
    cfg = presets.get("deepseek-v3")
    dumped = cfg.model_dump()
    before = json.dumps(dumped, default=str, sort_keys=True)
    data = cfg.changed({"parallelism.pp": 8, "cluster.num_gpus": 1024, "data.seq_len": 8192}, dumped)
    assert json.dumps(dumped, default=str, sort_keys=True) == before
    assert data == cfg.changed({"parallelism.pp": 8, "cluster.num_gpus": 1024, "data.seq_len": 8192})


def test_negative_row_indices_count_from_the_end():
    cfg = presets.get("deepseek-v3")
    s = costmodel.sweep(cfg, {"costs.gpu_hour_price": ["2 USD/hour", "1e308 USD/hour"]})
    assert s.status_of(-1) == "out of range"
    assert s.reason(1) is not None and s.reason(-1) == s.reason(1)
    with pytest.raises(costmodel.EstimateOutOfRange):
        s.estimate(-1)
    assert s.subset([-1]).reason(0) == s.reason(1)
    assert s.estimate(-2).values == s.estimate(0).values
    with pytest.raises(IndexError):
        s.reason(2)


# ------------------------------------------------- an independent review's findings (issue #9)

def test_search_takes_a_space_path_of_any_depth_and_refuses_a_string_of_values():
    cfg = costmodel.presets.get("megatron-gpt-1.7b")
    space = {"parallelism.tp": [1, 2], "parallelism.pp": [1], "parallelism.cp": [1], "parallelism.micro_batch": [1, 2],
             "parallelism.schedule": ["1f1b"], "parallelism.zero": [0, 1], "parallelism.recompute": ["none"]}
    r = costmodel.search(cfg, space={**space, "goodput": [0.9, 1.0]})  # no dot: used to crash finding the own row
    assert len(r) == 16
    from costmodel.layouts import _own_row

    assert _own_row(cfg, ("goodput", "parallelism.tp"), ((0.9, cfg.goodput), (cfg.parallelism.tp,))) == 1
    with pytest.raises(ValueError, match="must be a sequence of values; got '12'"):
        costmodel.search(cfg, space={"parallelism.tp": "12"})  # used to return no layout, silently


@pytest.mark.parametrize("seed", [None, -1, True, 1.5])
def test_a_bad_seed_is_refused_naming_it(seed):
    with pytest.raises(ValueError, match="seed"):
        costmodel.uncertainty(costmodel.presets.get("megatron-gpt-1.7b"), 4, seed=seed)


def test_a_cartesian_prepare_is_the_row_by_row_one():
    # prepare(cartesian=True) takes the row axes' arrays once and shares the rows the rules
    # refuse between groups that differ only in what the rules never read (ZeRO stage);
    # every status, reason, row value, derived dp and group is the general path's
    from costmodel import engine, layouts, sweeps

    axes = layouts.layout_space(V3)
    axes.update({"parallelism.tp": [1, 2, 3], "parallelism.ep": [8, 64, 0], "parallelism.micro_batch": [1, 2],
                 "parallelism.zero": [0, 3, 4], "cluster.num_gpus": [2048, 1000]})
    paths, values = sweeps._axes(V3, axes)
    codes = np.indices([len(v) for v in values]).reshape(len(values), -1)
    fast, fast_groups = sweeps.prepare(V3, paths, values, codes, derive_dp=True, cartesian=True)
    slow, slow_groups = sweeps.prepare(V3, paths, values, codes, derive_dp=True)
    assert np.array_equal(fast.status, slow.status)
    assert np.array_equal(fast.derived_dp, slow.derived_dp)
    assert fast._row_values.keys() == slow._row_values.keys()
    for k in fast._row_values:
        assert np.array_equal(fast._row_values[k], slow._row_values[k])
    refused = np.flatnonzero(fast.status == sweeps._REFUSED)
    assert refused.size > 1000 and len(fast_groups) > 10
    for i in refused[::97]:
        assert fast.reason(int(i)) == slow.reason(int(i))
    assert len(fast_groups) == len(slow_groups)
    for a, b in zip(fast_groups, slow_groups):
        assert np.array_equal(a.index, b.index) and a.cfg == b.cfg
        for f in engine.ROW_FIELDS.values():
            assert np.array_equal(getattr(a.rows, f), getattr(b.rows, f))


def test_the_own_rank_is_pinned_within_a_budget_of_exact_rows(monkeypatch):
    # by memory, V3's own layout ranks below hundreds of thousands of layouts: pinning its
    # rank took minutes. Past layouts.OWN_RANK_ROWS exact evaluations the search reports
    # the range its rank lies in; the top is exact either way
    from costmodel import layouts

    space = {**SMALL, "parallelism.zero": [0, 1, 2, 3], "parallelism.micro_batch": [1, 2, 4],
             "parallelism.recompute": ["none", "selective", "mla-up-proj", "full"]}
    pinned = costmodel.search(V3, space=space, top=3, objective="memory")
    rank = pinned.info["rank_of_config"]
    assert rank is not None and rank > pinned.info["rows"] // 100  # well below the top (106 of 416 valid)
    monkeypatch.setattr(layouts, "OWN_RANK_ROWS", 0)
    ranged = costmodel.search(V3, space=space, top=3, objective="memory")
    assert [ranged.axis_values(i) for i in range(3)] == [pinned.axis_values(i) for i in range(3)]
    assert ranged.info["rank_of_config"] is None and ranged.info["exact"] < pinned.info["exact"]
    lo, hi = ranged.info["rank_of_config_range"]
    assert lo <= rank <= hi


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.lists(st.tuples(st.sampled_from("abc"), st.lists(st.integers(0, 199), max_size=30),
                                               st.floats(-1e3, 1e3) | st.just(float("nan")) | st.lists(st.floats(-1e3, 1e3), min_size=30, max_size=30)),
                                    max_size=12),
       st.lists(st.integers(0, 199), max_size=20))
def test_row_columns_read_as_a_dict_of_nan_filled_arrays(n, writes, rows):
    # RowColumns keeps written pieces until read whole: every way of reading it (whole, at
    # rows, taken) agrees with a dict of NaN-filled arrays written in the same order
    cols, ref = RowColumns(n, ["a"]), {"a": np.full(n, np.nan)}
    for name, idx, value in writes:
        idx = np.array([i % n for i in idx], dtype=np.int64)
        if isinstance(value, list):  # one value per row written (rows may repeat: the later wins)
            value = np.array(value[:idx.size])
        cols.put(name, idx, value)
        ref.setdefault(name, np.full(n, np.nan))[idx] = value
    rows = np.array([r % n for r in rows], dtype=np.int64)
    assert list(cols) == list(ref)
    for k in ref:
        np.testing.assert_array_equal(cols.at(k, rows), ref[k][rows])
    taken = cols.take(rows)
    for k in ref:
        np.testing.assert_array_equal(taken[k], ref[k][rows])
        np.testing.assert_array_equal(cols[k], ref[k])  # whole, after the reads by row
    cols.put("a", np.arange(n), 1.0)  # written whole: a dense column takes writes in place
    assert np.all(cols["a"] == 1.0)


def test_row_columns_a_row_written_twice_in_one_piece_keeps_the_later():
    cols = RowColumns(100)
    cols.put("a", np.array([3, 1, 3]), np.array([5.0, 6.0, 7.0]))
    cols.put("a", np.array([1]), 8.0)
    assert cols.at("a", [3, 1, 0]).tolist()[:2] == [7.0, 8.0] and np.isnan(cols.at("a", 0))
    assert cols.take([3])["a"].tolist() == [7.0] and cols["a"][3] == 7.0


def test_product_codes_read_as_the_indices_array():
    from costmodel.sweeps import ProductCodes

    sizes = (3, 1, 4, 2)
    ref = np.indices(sizes).reshape(len(sizes), -1)
    codes = ProductCodes(sizes)
    idx = np.array([0, 5, 23, 7, 7])
    assert codes.shape == ref.shape and np.array_equal(np.asarray(codes), ref)
    assert np.array_equal(codes[:, idx], ref[:, idx]) and np.array_equal(codes[1:, idx], ref[1:, idx])
    assert all(codes[a, i] == ref[a, i] for a in range(4) for i in range(ref.shape[1]))
    for a in range(4):
        assert np.array_equal(np.asarray(codes[a]), ref[a]) and list(codes[a]) == ref[a].tolist()
        assert np.array_equal(codes[a][idx], ref[a][idx]) and np.array_equal(codes[a] == 1, ref[a] == 1)


def test_derived_dp_reads_each_groups_own_tp():
    # a whole section as an axis: groups of one pp and GPU count differ in tp (found by an
    # independent review: a derived dp shared by (pp, GPU count) alone refused the tp=16 row)
    cfg = presets.get("megatron-gpt-18.4b")
    d = cfg.parallelism.model_dump()
    s = costmodel.sweep(cfg, {"parallelism": [d, dict(d, tp=16)], "cluster.num_gpus": [256]})
    assert [s.axis_values(i)["parallelism.dp"] for i in range(2)] == [256 // (8 * d["pp"]), 256 // (16 * d["pp"])]
    assert [s.status_of(i) for i in range(2)] == ["ok", "ok"]


def test_cartesian_groups_refused_alike_match_the_general_path_without_row_axes():
    # groups refused with another group's errors (virtual stages the schedule does not take)
    # while tp and cp are the config's own: their rows' dp and reasons as the general path's
    from costmodel import sweeps

    axes = {"parallelism.pp": [4, 8], "parallelism.schedule": ["dualpipe", "1f1b", "interleaved"],
            "parallelism.virtual_stages": [1, 2, 4], "parallelism.zero": [0, 1]}
    paths, values = sweeps._axes(V3, axes)
    codes = np.indices([len(v) for v in values]).reshape(len(values), -1)
    fast, _ = sweeps.prepare(V3, paths, values, codes, derive_dp=True, cartesian=True)
    slow, _ = sweeps.prepare(V3, paths, values, codes, derive_dp=True)
    assert np.array_equal(fast.status, slow.status) and np.array_equal(fast.derived_dp, slow.derived_dp)
    assert [fast.reason(i) for i in range(fast.n)] == [slow.reason(i) for i in range(slow.n)]
    assert (fast.status == sweeps._REFUSED).sum() > 10


def test_why_none_counts_rows_by_reason():
    # every layout refused for one reason: "100% of them" (5% before: refusals were counted
    # by where each group stored its text; an independent review, session of 2026-11-30, fourth)
    from costmodel.layouts import why_none

    cfg = presets.get("megatron-gpt-1.7b")
    space = {"goodput": [1.5], "parallelism.schedule": ["1f1b"], "parallelism.virtual_stages": [1],
             "parallelism.recompute": ["full"]}
    msg = why_none(costmodel.search(cfg, space=space, top=3).info)
    assert "100% of them because goodput" in msg
