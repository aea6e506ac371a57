"""The unit registry and edge parsing."""

import pytest

from costmodel.units import Q_, format_quantity, parse, to_base


def test_flop_token_usd_are_own_dimensions():
    assert str(Q_("1 FLOP").dimensionality) == "[flop]"
    assert str(Q_("1 token").dimensionality) == "[token]"
    assert str(Q_("1 USD").dimensionality) == "[currency]"
    assert Q_("1 TFLOP/s").dimensionality != Q_("1 TB/s").dimensionality
    assert Q_("1 token/s").dimensionality != Q_("1 FLOP/s").dimensionality


@pytest.mark.parametrize(
    "text, kind, base",
    [
        ("400 GB/s", "bandwidth", 400e9),
        ("400 Gbit/s", "bandwidth", 50e9),
        ("80 GB", "memory", 80e9),
        ("80 GiB", "memory", 80 * 2**30),
        ("1979 TFLOP/s", "flop rate", 1979e12),
        ("1.979 PFLOP/s", "flop rate", 1979e12),
        ("3.7 us", "time", 3.7e-6),
        ("700 W", "power", 700.0),
        ("2 USD/hour", "price per hour", 2 / 3600),
        ("14.8e12 token", "tokens", 14.8e12),
    ],
)
def test_parse_to_base(text, kind, base):
    assert to_base(parse(text, kind), kind) == pytest.approx(base, rel=1e-12)


def test_parse_accepts_quantity_and_converts_to_canonical_unit():
    q = parse(Q_(0.4, "TB/s"), "bandwidth")
    assert q.units == Q_("1 GB/s").units and q.m == pytest.approx(400)


def test_tokens_accept_bare_counts_other_kinds_do_not():
    assert parse(14.8e12, "tokens").m == 14.8e12
    with pytest.raises(ValueError, match="with a unit"):
        parse(400, "bandwidth", field="cluster.scale_out_bandwidth")


@pytest.mark.parametrize(
    "value, kind, words",
    [
        ("2 USD/hour", "bandwidth", ["my.field", "bandwidth", "[currency] / [time]"]),
        ("400 Hz", "bandwidth", ["my.field", "bytes/[time]", "1 / [time]"]),  # no byte unit
        ("80", "memory", ["my.field", "memory", "with a unit"]),  # numeric text is a bare number
        ("1979 TB/s", "flop rate", ["my.field", "[flop]/[time]"]),
        ("warp 9", "time", ["my.field", "could not be read"]),
        (True, "time", ["my.field"]),
    ],
)
def test_wrong_dimension_names_field_wanted_and_given(value, kind, words):
    with pytest.raises(ValueError) as err:
        parse(value, kind, field="my.field")
    for w in words:
        assert w in str(err.value)


def test_non_finite_refused():
    with pytest.raises(ValueError, match="finite"):
        parse(float("nan"), "tokens")
    with pytest.raises(ValueError, match="finite"):
        parse("inf GB/s", "bandwidth")


def test_format_quantity_round_trips_exactly():
    q = parse("0.1 GB/s", "bandwidth") * 3
    assert parse(format_quantity(q), "bandwidth") == q
