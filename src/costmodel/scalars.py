"""numpy's ``where``, ``maximum`` and ``minimum`` without numpy's per-call cost on one value.

An estimate's row is Python numbers (``engine.Rows.scalars``), and the model's equations
run on them as on arrays of rows; on one value numpy's per-call overhead (about a
microsecond) is most of their cost. These functions give numpy's value for a Python or
numpy float among Python or numpy numbers, as a numpy ``float64``, so that the arithmetic
that follows keeps numpy's rules (a division by zero gives inf, not an exception), and
call numpy for anything else (arrays, integers only). ``tests/unit/test_scalars.py``
checks them against numpy, NaN, infinities and signed zeros included.
"""

from __future__ import annotations

import numpy as np

__all__ = ["where", "maximum", "minimum", "is_float", "is_number", "floats", "max_last"]

_FLOAT = (float, np.float64)
_NUMBER = (int, float, np.float64, np.int64)
_BOOL = (bool, np.bool_)
_f64 = np.float64


def is_float(x) -> bool:
    """Whether ``x`` is one float (a Python or numpy ``float64``), not an array."""
    return type(x) in _FLOAT


def is_number(x) -> bool:
    """Whether ``x`` is one number (a Python or numpy int64 or float64), not an array."""
    return type(x) in _NUMBER


def floats(x):
    """``x`` as floats: a numpy ``float64`` for one number (an estimate's row; numpy's rules
    after it, without a 0-d array's per-call cost), else ``np.asarray(x, dtype=float)``."""
    return _f64(x) if type(x) in _NUMBER else np.asarray(x, dtype=float)


#: The (type, type) pairs for which numpy gives one float64: numbers, one of them a float.
_FLOAT_PAIRS = frozenset((ta, tb) for ta in _NUMBER for tb in _NUMBER if ta in _FLOAT or tb in _FLOAT)


def where(condition, a, b):
    """``np.where(condition, a, b)``."""
    if type(condition) in _BOOL and (type(a), type(b)) in _FLOAT_PAIRS:
        return _f64(a if condition else b)
    return np.where(condition, a, b)


def maximum(a, b):
    """``np.maximum(a, b)``: NaN if either is NaN."""
    if (type(a), type(b)) in _FLOAT_PAIRS:
        return _f64(a if a > b or a != a else b)
    return np.maximum(a, b)


def minimum(a, b):
    """``np.minimum(a, b)``: NaN if either is NaN."""
    if (type(a), type(b)) in _FLOAT_PAIRS:
        return _f64(a if a < b or a != a else b)
    return np.minimum(a, b)


def max_last(a):
    """``np.max(a, axis=-1, keepdims=True)`` of an array; ``a`` itself (read only, as the
    callers use it) where that axis has one element: one rank, nothing to reduce."""
    a = np.asarray(a)
    return a if a.shape[-1:] == (1,) else a.max(axis=-1, keepdims=True)
