"""A read-only mapping for catalogue data and results.

``FrozenDict`` is a ``dict`` (so pydantic, json and pandas take it as one) whose contents
cannot change after it is built: every mutating method raises ``TypeError``. It pickles and
deep-copies as itself. Catalogue entries and ``Estimate`` hold their mappings in it, so no
caller can change a number that every later estimate in the process would see.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

__all__ = ["FrozenDict", "freeze", "PicklesAsJson", "memo_method", "record"]


class FrozenDict(dict):
    """A ``dict`` that refuses every change after construction."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any):
        raise TypeError(f"{type(self).__name__} is read-only: build a new mapping instead "
                        "(dict(m) gives a mutable copy)")

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __reduce__(self):
        return (type(self), (dict(self),))

    def __copy__(self) -> "FrozenDict":
        return self

    def __deepcopy__(self, memo: dict) -> "FrozenDict":
        return type(self)({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def _from_json(cls: type, text: str) -> Any:
    return cls.model_validate_json(text)


class PicklesAsJson:
    """Mixin for pydantic models: pickle as the model's own lossless JSON, so that unpickling
    needs no particular pint registry (Quantities inside travel as text) and revalidates."""

    def __reduce__(self):
        return (_from_json, (type(self), self.model_dump_json()))


def freeze(value: Any) -> Any:
    """``value`` with every dict inside it (at any depth) made a :class:`FrozenDict`."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) if isinstance(v, dict) else v for k, v in value.items()})
    return value


#: (id of the object, method, arguments, their types) -> (the object, result): an entry
#: keeps its object alive, so an id is never reused while a result of it is held.
_MEMO: dict = {}
#: Entries held at most (the memo is cleared when full): an estimate reads about a dozen, and
#: an entry keeps its object (a model or GPU, a few kB) alive until the clear.
MEMO_ENTRIES = 1024
_KEYED = (int, float, str, bool, type(None))
_KEYED_SET = frozenset(_KEYED)


def memo_method(fn):
    """Memoise a method of an immutable object (a frozen catalogue model: an architecture, a
    GPU), or a function whose first argument is one (an architecture's activation or GEMM
    bytes per token), on arguments that are Python numbers, strings or None; a call with
    any other argument (an array of rows) is computed. A ``dict`` result comes back as a
    fresh copy each call, so a caller may change its own. What it saves is the Python of
    recomputing an architecture's per-layer counts for every estimate of it
    (specs/engine.md, "Speed"). Only a frozen pydantic model's results are kept (a subclass
    that unfreezes it, or any other object, is computed every call); one changed behind
    pydantic's back (``object.__setattr__``) would read its old results, as it would break
    its own hash."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        types = tuple(map(type, args))
        if kwargs:
            types += tuple(map(type, kwargs.values()))
        if not _KEYED_SET.issuperset(types):
            return fn(self, *args, **kwargs)
        key = (id(self), name, args, tuple(kwargs.items()) if kwargs else (), types)
        hit = _MEMO.get(key)
        if hit is None:
            if not (getattr(self, "model_config", None) or {}).get("frozen"):  # not a frozen model: computed
                return fn(self, *args, **kwargs)
            if len(_MEMO) >= MEMO_ENTRIES:
                _MEMO.clear()
            hit = _MEMO[key] = (self, fn(self, *args, **kwargs))
        out = hit[1]
        return dict(out) if type(out) is dict else out

    return wrapper


def record(cls):
    """A frozen dataclass's ``__init__`` that sets every field with one ``__dict__`` update,
    for the small records the engine builds several times per estimate (links, rates, a
    layer's work, rows): the same parameters, order and defaults as the dataclass's own,
    which calls ``object.__setattr__`` once per field (measured: 0.85 us for a seven-field
    ``Work`` against 0.4 us). Only for classes without ``__post_init__``, slots, default
    factories, keyword-only fields or fields left out of ``__init__`` (checked)."""
    fs = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__") or \
            any(f.default_factory is not dataclasses.MISSING or f.kw_only or not f.init for f in fs):
        raise TypeError(f"record: {cls.__name__} needs its dataclass __init__")
    defaults = {f"_d_{f.name}": f.default for f in fs if f.default is not dataclasses.MISSING}
    params = ", ".join(f.name if f.default is dataclasses.MISSING else f"{f.name}=_d_{f.name}" for f in fs)
    body = ", ".join(f"{f.name}={f.name}" for f in fs)
    exec(f"def __init__(self, {params}):\n    self.__dict__.update({body})", defaults)
    init = defaults["__init__"]
    init.__qualname__, init.__module__ = f"{cls.__qualname__}.__init__", cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)  # the dataclass's own, for signatures
    cls.__init__ = init
    return cls
