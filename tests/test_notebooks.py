"""Every notebook in notebooks/ executes without error, holds no model code, and its saved
outputs are what it prints today (regenerate them with ``python tools/notebooks.py``)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

_spec = importlib.util.spec_from_file_location("notebooks_tool", Path(__file__).parent.parent / "tools" / "notebooks.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


@pytest.mark.parametrize("path", tool.NOTEBOOKS, ids=[p.stem for p in tool.NOTEBOOKS])
def test_notebook_executes_and_saved_outputs_are_current(path):
    errors, stale = tool.check(path)
    assert not errors
    assert not stale, f"{path.name}: saved outputs of code cells {stale} are stale; run: python tools/notebooks.py"


def test_notebooks_hold_no_model_code():
    for path in tool.NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "import numpy" not in source and "class " not in source, path
