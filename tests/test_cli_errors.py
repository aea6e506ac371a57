"""Every user error of the ``costmodel`` command, run as a subprocess: exit status 2 (3 when
the layout does not fit), one line on standard error starting ``costmodel: error:`` (or
``costmodel: does not fit:``), and no traceback. Issue #7, item 7."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

V3 = "deepseek-v3"
FILES = {
    "bad.yaml": "model: deepseek-v3\ndata: {tokens: 1e12\n",
    "bad.json": '{"model": ',
    "bad.toml": "model = \n",
    "wrong.yaml": "model: deepseek-v3\ncluster: {gpu: H800, num_gpus: 0}\n",
}

# (arguments, exit status, words the error line must hold)
CASES = [
    (["estimate", "bad.yaml"], 2, ["bad.yaml"]),
    (["estimate", "bad.json"], 2, ["bad.json"]),
    (["estimate", "bad.toml"], 2, ["bad.toml"]),
    (["estimate", "missing.yaml"], 2, ["missing.yaml", "No such file"]),
    (["estimate", "wrong.yaml"], 2, ["cluster.num_gpus"]),
    (["estimate", "no-such-preset"], 2, ["no-such-preset", "deepseek-v3"]),
    (["pipeline", V3, "--plot", "/no/such/folder/x.png"], 2, ["/no/such/folder", "does not exist"]),
    (["estimate", V3, "--set", "parallelism.comm_sms=131"], 0, []),  # legal: one SM left computes
    (["estimate", V3, "--set", "parallelism.comm_sms=132"], 2, ["comm_sms=132", "sms=132"]),
    (["estimate", V3, "--set", "parallelism.comm_sms=200"], 2, ["comm_sms=200"]),
    (["estimate", V3, "--set", "parallelism.comm_sms=-1"], 2, ["parallelism.comm_sms", "-1"]),
    (["estimate", V3, "--set", "cluster.gpus_per_node=4096"], 2, ["gpus_per_node=4096", "8"]),
    (["estimate", V3, "--set", "costs.fleet_gpus=100"], 2, ["fleet_gpus=100", "2048"]),
    (["estimate", V3, "--set", "data.tokens=-5"], 2, ["data.tokens", "positive"]),
    (["estimate", V3, "--set", "cluster.scale_out_bandwidth=fast"], 2, ["scale_out_bandwidth", "fast"]),
    (["estimate", V3, "--set", "cluster.gpu=X9"], 2, ["X9", "H800-SXM"]),
    (["estimate", V3, "--set", "nosuch.field=1"], 2, ["nosuch"]),
    (["estimate", V3, "--set", "parallelism.pp"], 2, ["path=value"]),
    (["flops", V3, "--seq-len", "0"], 2, ["seq_len", "0"]),
    (["flops", V3, "--seq-len", "-4096"], 2, ["seq_len", "-4096"]),
    (["flops", V3, "--seq-len", "x"], 2, ["--seq-len"]),
    (["no-such-command"], 2, ["no-such-command"]),
    (["estimate"], 2, ["target"]),
    (["estimate", "deepseek-v3", "--set", "parallelism.zero=0"], 3, ["does not fit", "GB"]),
    (["pipeline", V3, "--plot", "timeline.txt"], 2, ["timeline.txt", ".png"]),  # refused before simulating
    (["pipeline", V3, "--plot", "t.png", "--dpi", "0"], 2, ["--dpi", "0"]),
    (["estimate", V3, "--set", "data.tokens=1" + "0" * 400], 2, ["data.tokens", "finite"]),
    (["estimate", V3, "--set", "costs.fleet_gpus=1" + "0" * 400], 2, ["outside the range"]),
    (["flops", V3, "--seq-len", "1" + "0" * 400], 2, ["seq_len"]),
    (["estimate", V3, "--set", "cluster.gpu=GB200"], 2, ["num_gpus=2048", "72", "scale_up_domain"]),
    (["estimate", V3, "--set", "cluster.scale_up_bandwidth=1e-308 GB/s"], 2, ["outside the range"]),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    exe = [sys.executable, "-m", "costmodel.cli"]

    def run(args):
        return subprocess.run(exe + args, cwd=folder, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(map(tuple, (c[0] for c in CASES)), pool.map(run, (c[0] for c in CASES))))


@pytest.mark.parametrize("args, code, words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_user_error_is_one_clean_line(results, args, code, words):
    r = results[tuple(args)]
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if code == 0:
        assert not [line for line in lines if "error" in line]
        return
    prefix = "costmodel: does not fit:" if code == 3 else "costmodel: error:"
    assert len(lines) == 1 and lines[0].startswith(prefix), r.stderr
    if code == 2:
        assert not r.stdout, r.stdout[:300]  # an error prints no partial result
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "errors.pydantic.dev" not in lines[0] and "input_value=" not in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "costmodel.cli", "--debug", "estimate", "missing.yaml"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" in r.stderr and "costmodel: error:" in r.stderr


def test_exit_codes_are_documented():
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert "2 for a user error" in readme and "3 when the layout does not fit" in readme
