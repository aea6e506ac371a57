"""Every example in a module's docstrings runs and prints what it says (an independent
review found the price catalogue's example stale: 33,750 where the catalogue gives 37,080.5)."""

import doctest
import importlib
import pkgutil

import pytest

import costmodel

MODULES = sorted(m.name for m in pkgutil.walk_packages(costmodel.__path__, "costmodel.")
                 if not m.name.startswith("costmodel.plot"))  # plot: no examples (it imports matplotlib)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
