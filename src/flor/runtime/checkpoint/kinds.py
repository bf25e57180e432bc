"""What `flor.checkpointing` accepts, and how each kind of object is put back in place.

Objects are refused before training starts when `restore` could not put them back in
place: immutable values, read-only arrays, classes with `__slots__`. Generators named in
`flor.checkpointing` (a `random.Random`, a numpy `Generator` or `RandomState`, a
`torch.Generator`) are saved by their own state, not their `__dict__`.
"""

from __future__ import annotations

import os
import random
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flor.errors import CheckpointError

RNG_PART = "@rng"
PICKLE_ENV = "FLOR_CKPT_PICKLE"
SUPPORTED = (
    "objects with state_dict(), torch tensors, numpy arrays, dicts, lists, objects with __dict__"
)

ATOMS = frozenset({str, int, float, bool, type(None)})
_NOT_STATE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
)


@dataclass(frozen=True)
class Ref:
    """A reference, inside one object's state, to another named object."""

    name: str


@dataclass(frozen=True)
class Entry:
    """The copied state of one named object; `kind` says how to restore it."""

    kind: str  # state_dict | tensor | ndarray | dict | list | object | generator | rng
    state: Any


def typename(obj: object) -> str:
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def is_tensor(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def np_tag(v: Any) -> str | None:
    """ "a" for a plain ndarray, "s" for a numpy scalar, if saved without pickle; else None."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if type(v) is np.ndarray:
        tag = "a"
    elif isinstance(v, np.generic):
        tag = "s"
    else:
        return None
    return None if v.dtype.hasobject else tag


def _has_slots(cls: type) -> bool:
    """True when some class in the MRO stores attributes outside `__dict__`."""
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        if any(s not in ("__dict__", "__weakref__") for s in slots):
            return True
    return False


def _kind(obj: object) -> tuple[str | None, str]:
    """How `obj` can be restored in place, or None and the reason it cannot."""
    cannot = "it cannot be restored in place"
    if isinstance(obj, _NOT_STATE):
        return None, cannot
    if generator_state(obj) is not None:
        return "generator", ""
    if is_tensor(obj):
        return "tensor", ""
    if callable(getattr(obj, "state_dict", None)) and callable(
        getattr(obj, "load_state_dict", None)
    ):
        return "state_dict", ""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return ("ndarray", "") if obj.flags.writeable else (None, "it is a read-only array")
    if isinstance(obj, dict):
        return "dict", ""
    if isinstance(obj, list):
        return "list", ""
    if isinstance(getattr(obj, "__dict__", None), dict):
        if _has_slots(type(obj)):
            return None, "its class keeps attributes in __slots__, outside __dict__"
        return "object", ""
    return None, cannot


def generator_state(obj: object) -> Any:
    """The state of a random generator object (its `__dict__` would not hold it), or None."""
    if isinstance(obj, random.Random):
        return obj.getstate()
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.random.Generator):
            return obj.bit_generator.state
        if isinstance(obj, np.random.RandomState):
            return obj.get_state(legacy=False)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Generator):
        return obj.get_state()
    return None


def set_generator_state(obj: Any, state: Any) -> None:
    if isinstance(obj, random.Random):
        obj.setstate(state)
    elif type(obj).__name__ == "RandomState":
        obj.set_state(state)
    elif hasattr(obj, "bit_generator"):
        obj.bit_generator.state = state
    else:
        obj.set_state(state)


def kinds_of(objects: Mapping[str, object]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    seen: dict[int, str] = {}
    for name, obj in objects.items():
        if not isinstance(name, str) or not name or name == RNG_PART:
            raise CheckpointError(
                f"cannot checkpoint an object named {name!r}: names must be non-empty strings "
                f"other than {RNG_PART!r}."
            )
        kind, why = _kind(obj)
        if kind is None:
            raise CheckpointError(
                f"cannot checkpoint {name!r} of type {typename(obj)}: {why}; "
                f"supported: {SUPPORTED}."
            )
        if id(obj) in seen:
            raise CheckpointError(
                f"cannot checkpoint {name!r}: it is the same object as {seen[id(obj)]!r}; "
                "pass each object under one name only."
            )
        seen[id(obj)] = name
        kinds[name] = kind
    return kinds


def validate_objects(objects: dict[str, object]) -> None:
    """Refuse, before training starts, anything `restore` could not put back in place."""
    kinds_of(objects)


def pickle_allowed(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")
