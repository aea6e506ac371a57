"""Every catalogued price (catalog/prices.toml) against the published figures behind it.

The figures are transcribed here from the team's reference costs.yaml (prices.rental_usd_per_gpu_hour
and prices.purchase_usd), each row naming its source and date; the catalogue's price is the
median of its quotes, checked to the cent (rental) or the dollar (purchase). Adding a price to the
catalogue without a row here fails ``test_every_catalogued_price_has_a_reference_row``.
"""

import statistics

import pytest

import costmodel
from costmodel import prices

CNY_PER_USD_2023, CNY_PER_USD_2024 = 7.08, 7.19  # yearly averages, recalled (the catalogue says so)

# (kind, gpu, market) -> (published figures in the entry's unit, their source and date as in
# reference costs.yaml, the catalogue's date field)
REFERENCE = {
    ("rental", "H100-SXM", "neocloud"): (
        [2.99, 3.29, 2.99, 2.45, 2.94],
        "Lambda 2.99 (2024-09-01), Lambda 3.29 (2024-11-29), RunPod 2.99, Cudo 2.45, Oblivus 2.94 (2025-03-03); "
        "Epoch AI CSV", "2024-09 to 2025-03"),
    ("rental", "H100-SXM", "hyperscaler-committed"): (
        [4.86, 4.31], "GCP A3 3-yr CUD 4.86, Azure NCads H100 v5 3-yr 4.31 (2025-03-17); Epoch AI CSV", "2025-03-17"),
    ("rental", "H100-SXM", "hyperscaler-on-demand"): (
        [12.29, 11.06, 10.0], "AWS p5 12.29, GCP A3 11.06, Oracle 10.00 (2025-03-17); Epoch AI CSV", "2025-03-17"),
    # H800: no market found; the H100 SXM figures stand in (the catalogue says 'estimated')
    ("rental", "H800-SXM", "neocloud"): ([2.99, 3.29, 2.99, 2.45, 2.94], "as H100-SXM", "2024-09 to 2025-03"),
    ("rental", "H800-SXM", "hyperscaler-committed"): ([4.86, 4.31], "as H100-SXM", "2025-03-17"),
    ("rental", "H800-SXM", "hyperscaler-on-demand"): ([12.29, 11.06, 10.0], "as H100-SXM", "2025-03-17"),
    ("rental", "H100-PCIe", "neocloud"): ([2.49], "Lambda H100 PCIe 2.49; Epoch AI CSV", "2024-01-29 to 2025-02-28"),
    ("rental", "H200", "hyperscaler-on-demand"): ([84.80 / 8], "AWS H200 $84.80 per 8 GPUs; Epoch AI CSV", "2025-03-17"),
    ("rental", "A100-SXM-80GB", "neocloud"): ([1.85, 2.55], "Datacrunch/RunPod/Oblivus 1.85-2.55", "2022-08 to 2023-05"),
    ("rental", "A100-SXM-80GB", "hyperscaler-committed"): ([1.81], "AWS p4de 3-yr 1.81", "2022-08 to 2025-03"),
    ("rental", "A100-SXM-80GB", "hyperscaler-on-demand"): ([5.12], "AWS p4de on demand 5.12", "2022-08 to 2025-03"),
    ("rental", "A100-SXM-40GB", "neocloud"): ([2.5, 2.0], "MosaicML reserved 2.50 (MPT-30B blog), MPT-7B 2.00",
                                              "2023-06-22"),
    ("rental", "A100-SXM-40GB", "hyperscaler-committed"): ([1.45, 1.03], "AWS p4d 3-yr 1.45, GCP 3-yr 1.03",
                                                           "2021-06 to 2025-03"),
    ("rental", "A100-SXM-40GB", "hyperscaler-on-demand"): ([4.1, 2.93], "AWS p4d 4.10, GCP 2.93",
                                                           "2021-06 to 2025-03"),
    ("purchase", "H100-SXM", None): (
        [270000 / 8, 41197.5, 41217.0, 37080.5, 31904.63, 375000 / 8, 230000 / 8],
        "DGX H100 $270k (SemiAnalysis 2023-05); DGX H100 640GB 41,197.50 (2023-12-11), 41,217 (2024-03-20) "
        "(deltacomputer); Supermicro HGX per GPU 37,080.50 (2024-03-21); HGX H100 per GPU 31,904.63 (2025-01-31); "
        "$375k (viperatech 2025-03-03), $230k (signalpulse 2025-03-03)",
        "2023-05 to 2025-03"),
    ("purchase", "H800-SXM", None): ([2_000_000 / CNY_PER_USD_2023 / 8],
                                     "Reuters: 8-GPU H800 servers ~2 million yuan at launch (2023)", "2023"),
    ("purchase", "H20", None): ([1_400_000 / CNY_PER_USD_2024 / 8, 1_200_000 / CNY_PER_USD_2024 / 8],
                                "H20 8-GPU server 1.4M yuan (Reuters 2024-02), 1.2M yuan (Huxiu 2024-07)",
                                "2024-02 to 2024-07"),
    ("purchase", "H200", None): ([33820.65, 39083.38], "HGX H200 per GPU (2024-03-27, 2025-01-31)",
                                 "2024-03-27 to 2025-01-31"),
    ("purchase", "A100-SXM-80GB", None): ([37500.0, 20875.0, 18548.75],
                                          "DGX A100 640GB 37,500 (2021-06-30); HGX A100 640GB 20,875 (2022-01-20), "
                                          "18,548.75 (2023-09-23)", "2021-06 to 2023-09"),
    ("purchase", "A100-SXM-40GB", None): ([199000 / 8], "DGX A100 320GB $199,000 at release (2020-05)", "2020-05"),
    ("purchase", "B200", None): ([47409.13], "DGX B200 per GPU, EUR->USD (2024-12-17)", "2024-12-17"),
}


def _key(p):
    return (p.kind, p.gpu, p.market)


def test_every_catalogued_price_has_a_reference_row():
    assert sorted(map(_key, prices.entries()), key=str) == sorted(REFERENCE, key=str)


@pytest.mark.parametrize("key", sorted(REFERENCE, key=str), ids=lambda k: "-".join(str(x) for x in k if x))
def test_catalogued_price_is_the_median_of_its_published_figures(key):
    figures, _source, date = REFERENCE[key]
    entry = next(p for p in prices.entries() if _key(p) == key)
    tol = 0.005 if entry.kind == "rental" else 0.5  # the cent; the dollar (CNY conversions rounded)
    assert entry.value == pytest.approx(statistics.median(figures), abs=tol)
    assert entry.date == date
    assert entry.source and entry.verification in ("primary_text", "primary_excerpt", "secondary", "derived",
                                                   "recalled")
    assert entry.low - tol <= min(figures) and max(figures) <= entry.high + tol  # the range holds every figure
    if entry.gpu == "H800-SXM" or "CNY" in entry.source or "yuan" in entry.source:
        assert entry.estimated  # a stand-in or a recalled exchange rate says so


def test_the_committed_market_is_three_year_commitments_only():
    for p in costmodel.prices.entries():
        if p.market == "hyperscaler-committed":
            assert "3-year" in p.source and "1-year $" not in p.source.split("1-year commitments")[0]


def test_rental_spans_are_the_references_summary():
    # reference costs.yaml rental_summary_note: H100 SXM $2 (neocloud) to $12.3 (on demand); A100 80GB $1.8-5.1
    # (the $5.1 rounds AWS p4de's $5.12, the catalogue's top)
    spans = {p.gpu: (p.low, p.high) for p in costmodel.prices.spans()}
    assert spans == {"H100-SXM": (2.0, 12.3), "H800-SXM": (2.0, 12.3), "A100-SXM-80GB": (1.8, 5.12),
                     "A100-SXM-40GB": (1.03, 4.1)}  # the 40GB span: the extremes of its markets (derived)
    for p in costmodel.prices.spans():  # a span covers every market of its GPU
        assert all(p.low <= m.low and m.high <= p.high for m in costmodel.prices.rentals(p.gpu).values())


def test_market_ranges_are_the_references_summary():
    # reference costs.yaml rental_summary_note: H100 SXM 2023-2025, neoclouds $2-4, hyperscaler
    # on demand $10-12.3, 3-year commitment $4.3-4.9
    for market, (lo, hi) in {"neocloud": (2.0, 4.0), "hyperscaler-on-demand": (10.0, 12.3),
                             "hyperscaler-committed": (4.3, 4.9)}.items():
        p = prices.rental("H100-SXM", market)
        assert (p.low, p.high) == (lo, hi)


def test_the_v3_reports_rate_lies_in_the_h800_neocloud_market():
    # DeepSeek-V3 report, Table 1: $2 per H800 GPU-hour, the market's floor
    assert prices.rental("H800-SXM", "neocloud").low == 2.0


def test_the_v3_presets_pinned_purchase_price_is_the_catalogues_h800_entry():
    # pinned as a number (so the preset moved to a GPU without a catalogued price still prices),
    # but from the catalogue: one figure
    v3 = costmodel.presets.get("deepseek-v3")
    assert v3.costs.gpu_price.to("USD").m == pytest.approx(prices.purchase("H800-SXM").value, abs=0.5)
    assert v3.costs.overhead == 1.0
