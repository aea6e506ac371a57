"""The GPU catalogue."""

import pytest

import costmodel
from costmodel import GPU, UnknownName, UnknownPeak, UnsupportedPrecision
from costmodel.hardware import PRECISIONS

REQUIRED = ["H100-SXM", "H100-PCIe", "H800-SXM", "H800-PCIe", "H20", "H200", "A100-SXM-40GB",
            "A100-SXM-80GB", "A800", "B200", "MI300X"]


def test_catalogue_holds_the_required_parts():
    assert set(REQUIRED) <= {g.name for g in costmodel.gpus()}


@pytest.mark.parametrize("name", REQUIRED)
def test_every_part_is_complete_and_sourced(name):
    g = costmodel.gpu(name)
    assert len(g.source) > 40 and g.verification
    for dtype in ("bf16", "fp16", "tf32"):
        assert g.peak(dtype).to("TFLOP/s").m > 0
    assert g.hbm_capacity.to("GB").m > 0 and g.hbm_bandwidth.to("GB/s").m > 0
    assert g.scale_up_bandwidth.to("GB/s").m > 0
    assert g.tdp is not None
    for field in g.recalled:  # a recalled field must name something the entry has
        head = field.split(".")[0]
        assert head in type(g).model_fields, field


def test_dense_peaks_are_half_the_sparse_datasheet_values():
    # hardware.yaml: H100 SXM datasheet sparse TF32 989, BF16 1979, FP8 3958 TFLOPS.
    h100 = costmodel.gpu("H100-SXM")
    assert h100.peak("bf16").m == pytest.approx(1979 / 2, rel=1e-3)
    assert h100.peak("fp8").m == pytest.approx(3958 / 2, rel=1e-3)
    assert h100.peak("tf32").m == pytest.approx(989 / 2, rel=1e-3)


def test_h800_is_an_h100_with_cut_nvlink_and_fp64():
    h100, h800 = costmodel.gpu("H100-SXM"), costmodel.gpu("H800-SXM")
    for dtype in ("tf32", "bf16", "fp16", "fp8"):
        assert h800.peak(dtype) == h100.peak(dtype)
    assert h800.scale_up_bandwidth.to("GB/s").m == 200  # 400 GB/s bidirectional
    assert h100.scale_up_bandwidth.to("GB/s").m == 450  # 900 GB/s bidirectional
    assert h800.peak("fp64").m < h100.peak("fp64").m
    assert h800.hbm_capacity == h100.hbm_capacity


def test_lookup_is_case_insensitive_and_knows_aliases():
    assert costmodel.gpu("h800-sxm").name == "H800-SXM"
    assert costmodel.gpu("H800-SXM5-80GB").name == "H800-SXM"
    assert costmodel.gpu("A100-SXM4-80GB").name == "A100-SXM-80GB"


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownName) as err:
        costmodel.gpu("X100")
    assert "X100" in str(err.value) and "H800-SXM" in str(err.value) and "MI300X" in str(err.value)
    assert isinstance(err.value, KeyError)


def test_a100_has_no_fp8():
    with pytest.raises(UnsupportedPrecision, match="A100-SXM-80GB.*FP8"):
        costmodel.gpu("A100-SXM-80GB").peak("fp8")
    assert not costmodel.gpu("A100-SXM-80GB").supports("fp8")


def test_unknown_peak_and_bad_dtype():
    with pytest.raises(UnknownPeak, match="fp32"):
        costmodel.gpu("H800-PCIe").peak("fp32")
    with pytest.raises(ValueError, match="dtype must be one of"):
        costmodel.gpu("H100-SXM").peak("int4")


def test_peak_flops_is_a_plain_float_in_flop_per_second():
    assert costmodel.gpu("H100-SXM").peak_flops("bf16") == pytest.approx(989.4e12)


def test_user_defined_gpu():
    g = GPU(name="X200", peaks={"bf16": "2000 TFLOP/s", "fp8": "4 PFLOP/s"}, hbm_capacity="288 GB",
            hbm_bandwidth="8 TB/s", scale_up_bidirectional="1.8 TB/s", tdp="1.2 kW", scale_up_domain=72)
    assert g.peak("fp8").to("TFLOP/s").m == pytest.approx(4000)
    assert g.scale_up_bandwidth.to("GB/s").m == pytest.approx(900)
    with pytest.raises(UnknownPeak):
        g.peak("fp64")
    with pytest.raises(ValueError, match="flop rate"):
        GPU(name="bad", peaks={"bf16": "2000 TB/s"}, hbm_capacity="1 GB", hbm_bandwidth="1 TB/s",
            scale_up_bidirectional="1 GB/s")


def test_precisions_are_the_documented_set():
    assert PRECISIONS == ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4")
