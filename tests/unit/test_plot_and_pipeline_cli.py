"""The timeline plot and the `costmodel pipeline` command."""

import pytest

from costmodel.cli import main
from costmodel.pipeline import simulate

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_timeline_draws_every_op(tmp_path):
    from costmodel.plot import timeline

    r = simulate("dualpipe", 4, 10, F=1.0, B=1.0, W=1.0, FB=2.5)
    ax = timeline(r)
    drawn = sum(len(c.get_paths()) for c in ax.collections)  # one bar per op, in collections
    assert drawn == len(r.ops["rank"])
    assert "dualpipe" in ax.get_title()
    path = tmp_path / "t.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000


def test_cli_pipeline_with_plot(tmp_path, capsys):
    out = tmp_path / "v3.png"
    assert main(["pipeline", "deepseek-v3", "--plot", str(out), "--dpi", "40"]) == 0
    text = capsys.readouterr().out
    assert "dualpipe on 16 ranks, 120 micro-batches" in text and "idle fraction" in text
    assert out.stat().st_size > 1000


def test_cli_pipeline_schedule_override(capsys):
    assert main(["pipeline", "megatron-gpt-145.6b", "--schedule", "1f1b"]) == 0
    assert "1f1b on 8 ranks" in capsys.readouterr().out
