"""Presets and the costmodel command."""

import json
import subprocess
import sys

import pytest

from costmodel import models, presets
from costmodel.cli import main

REQUIRED_MODEL_NAMES = [
    "deepseek-v3", "deepseek-v2", "deepseek-67b", "llama3-8b", "llama3-70b", "llama3-405b", "llama2-7b",
    "llama2-13b", "llama2-70b", "llama1-65b", "nemotron4-340b", "bloom-176b", "opt-175b", "mt-nlg-530b",
    "gpt3-175b", "falcon-180b", "megatron-gpt-1.7b", "megatron-gpt-529.6b", "megatron-gpt-1t",
]


def test_required_model_names_exist():
    assert set(REQUIRED_MODEL_NAMES) <= set(models.names())
    assert all(n == n.lower() for n in models.names())


@pytest.mark.parametrize("name", models.names())
def test_every_model_cites_a_source(name):
    m = models.get(name)
    assert len(m.source) > 30 and m.verification


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_cites_a_source_and_lists_assumptions(name):
    p = presets.info(name)
    assert len(p.source) > 60 and p.assumptions
    assert p.config.model.name == name  # presets are named as their architectures


def test_calibration_presets_exist():
    for name in ["deepseek-v3", "llama3-405b", "megatron-gpt-1.7b", "megatron-gpt-18.4b",
                 "megatron-gpt-145.6b", "megatron-gpt-1t"]:
        assert name in presets.names()


def test_unknown_preset():
    with pytest.raises(KeyError, match="unknown preset 'nope'.*deepseek-v3"):
        presets.get("nope")


def test_cli_gpus_lists_sources(capsys):
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert "H800-SXM" in out and "989.4" in out and "Sources" in out and "2505.09343" in out


def test_cli_gpus_json(capsys):
    assert main(["gpus", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {g["name"] for g in data} >= {"H100-SXM", "MI300X"}


def test_cli_presets(capsys):
    assert main(["presets", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "deepseek-v3" in out and "dualpipe" in out and "assumptions" in out


def test_cli_models(capsys):
    assert main(["models"]) == 0
    assert "671.03" in capsys.readouterr().out


def test_cli_flops_breakdown(capsys):
    assert main(["flops", "deepseek-v3"]) == 0
    out = capsys.readouterr().out
    assert "moe_routed" in out and "250.457" in out and "mla-up-proj" in out


def test_cli_flops_json_agrees_with_library(capsys):
    assert main(["flops", "llama3-8b", "--seq-len", "8192", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    want = models.get("llama3-8b").flops_per_token(8192).total.m
    assert data["flops_per_token"]["total"] == want and data["params_total"] == 8_030_261_248


def test_cli_errors_are_clean(capsys):
    assert main(["flops", "gpt-99"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset or model 'gpt-99'" in err and "Traceback" not in err


def test_cli_help_explains_each_command():
    out = subprocess.run([sys.executable, "-m", "costmodel.cli", "--help"], capture_output=True, text=True).stdout
    for cmd in ("gpus", "models", "presets", "flops"):
        assert cmd in out
