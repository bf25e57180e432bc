"""Put captured states back into the live objects, in place.

`load_state_dict` for anything that has one (torch modules, optimizers, LR schedulers),
`Tensor.copy_` for tensors, `arr[...] = saved` for numpy arrays, `clear()` +
`update`/`extend` for dicts and lists, and `__dict__` replacement for plain objects (which
covers scikit-learn estimators). Everything is checked and copied before anything is
mutated, so a mismatch leaves the objects as they were.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from flor.errors import CheckpointError
from flor.runtime.checkpoint.capture import Copier
from flor.runtime.checkpoint.codec import Snapshot
from flor.runtime.checkpoint.kinds import RNG_PART, Entry, kinds_of, set_generator_state, typename


def _check_restorable(name: str, obj: Any, kind: str, entry: Entry | None) -> Entry:
    if entry is None:
        raise CheckpointError(f"cannot restore {name!r}: the checkpoint holds no state for it.")
    if entry.kind != kind:
        raise CheckpointError(
            f"cannot restore {name!r}: it was checkpointed as {entry.kind!r} but is now "
            f"{kind!r} ({typename(obj)})."
        )
    if kind in ("tensor", "ndarray"):
        saved = entry.state
        if tuple(saved.shape) != tuple(obj.shape) or saved.dtype != obj.dtype:
            raise CheckpointError(
                f"cannot restore {name!r}: it was checkpointed with shape "
                f"{tuple(saved.shape)} and dtype {saved.dtype}, but is now "
                f"{tuple(obj.shape)} {obj.dtype}."
            )
    return entry


def _restore_one(name: str, obj: Any, kind: str, fresh: Any) -> None:
    if kind == "state_dict":
        try:
            obj.load_state_dict(fresh)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"cannot restore {name!r}: {exc}") from exc
    elif kind == "tensor":
        import torch

        with torch.no_grad():
            obj.copy_(fresh)
    elif kind == "ndarray":
        obj[...] = fresh
    elif kind == "dict":
        obj.clear()
        obj.update(fresh)
    elif kind == "list":
        obj[:] = fresh
    elif kind == "generator":
        set_generator_state(obj, fresh)
    else:
        attrs = vars(obj)
        attrs.clear()
        attrs.update(fresh)


def _restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(state["random"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def restore(objects: dict[str, object], snap: Snapshot) -> None:
    """Put every named object and the RNG states back as they were at `capture`, in place."""
    kinds = kinds_of(objects)
    entries = snap.entries
    thaw = Copier({}, objects, allow_pickle=True)
    fresh: dict[str, Any] = {}
    for name, obj in objects.items():  # check and copy everything before mutating anything
        entry = _check_restorable(name, obj, kinds[name], entries.get(name))
        # copy_ and arr[...] = copy the saved data; anything else would alias the snapshot
        plain = entry.kind in ("tensor", "ndarray")
        fresh[name] = entry.state if plain else thaw.copy(entry.state)
    for name, obj in objects.items():
        _restore_one(name, obj, kinds[name], fresh[name])
    _restore_rng(entries[RNG_PART].state)
