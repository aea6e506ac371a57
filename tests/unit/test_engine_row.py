"""An estimate's row on Python numbers (engine.evaluate(row=True), Columns.row) is the
columns' row, bit for bit, and is range-checked in the same order with the same reason."""

import math

import numpy as np
import pytest

import costmodel
from costmodel import engine, presets


def _same(a, b) -> bool:
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


@pytest.mark.parametrize("name", presets.names())
@pytest.mark.parametrize("mode", ["closed", "auto"])
def test_a_row_is_the_columns_row(name, mode):
    cfg = presets.get(name)
    with np.errstate(all="ignore"):
        row, cols = engine.evaluate(cfg, None, mode, row=True), engine.evaluate(cfg, None, mode)
    assert row.is_row and not cols.is_row and row.row(0) is row
    other = cols.row(0)
    for f in ("values", "step", "memory", "marginal", "capital", "sched"):
        a, b = getattr(row, f), getattr(other, f)
        assert list(a) == list(b) and all(_same(a[k], b[k]) for k in a), f
    for f in ("mfu", "mfu_at_precision", "fits", "steps", "placement"):
        assert _same(getattr(row, f), getattr(other, f)), f
    assert row.row(-1) is row
    with pytest.raises(IndexError):
        row.row(1)


def test_a_row_is_one_row():
    cfg = presets.get("megatron-gpt-1.7b")
    rows = engine.Rows.of(cfg).take(np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="one row; got 3"):
        engine.evaluate(cfg, rows, "closed", row=True)


@pytest.mark.parametrize("change", [
    {"costs.gpu_hour_price": "1e308 USD/hour"},  # a ledger past float range
    {"efficiency.compute": 1e-303},  # a finite step whose run passes float range (wall time first)
    {"efficiency.compute": 1e-320},  # work that is not finite (Columns.error)
])
def test_a_row_out_of_range_names_what_the_columns_name(change):
    cfg = presets.get("megatron-gpt-1.7b").replace(**change)
    with np.errstate(all="ignore"):
        row, cols = engine.evaluate(cfg, None, "closed", row=True), engine.evaluate(cfg, None, "closed")
    bad = engine.out_of_range(row)
    assert bad and bad == engine.out_of_range(cols)
    with pytest.raises(costmodel.EstimateOutOfRange, match=bad[0][0]):
        costmodel.estimate(cfg)
