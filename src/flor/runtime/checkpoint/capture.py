"""Copy the named objects' states on the training path; serializing comes later.

Pickle fallback (explicit): a value with no safe encoding (an estimator's loss object, a
numpy object array, a dict subclass inside a state) is refused, naming the object and
attribute, unless `allow_pickle=True` is passed (or `FLOR_CKPT_PICKLE=1` is set when the
argument is left at None). CUDA generators are captured with the RNG states when CUDA is
initialized.
"""

from __future__ import annotations

import copy
import pickle
import random
import sys
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from flor.errors import CheckpointError
from flor.runtime.checkpoint.codec import Snapshot
from flor.runtime.checkpoint.kinds import (
    ATOMS,
    PICKLE_ENV,
    RNG_PART,
    Entry,
    Ref,
    generator_state,
    kinds_of,
    np_tag,
    pickle_allowed,
    typename,
)


class _Unsafe(Exception):
    """A value with no safe encoding was met while pickling is not allowed."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


class Copier:
    """Deep copy of state trees: tensors cloned, arrays copied, containers rebuilt.

    At capture, references to named objects become `Ref`s and values without a safe
    encoding raise `_Unsafe` unless pickling is allowed; at restore, `Ref`s become the
    live objects again. Atoms are checked inline: long lists of numbers are common.
    """

    def __init__(
        self, refs: dict[int, str], objects: Mapping[str, object], allow_pickle: bool
    ) -> None:
        self.refs, self.objects, self.allow_pickle = refs, objects, allow_pickle
        self.torch = sys.modules.get("torch")

    def copy(self, v: Any) -> Any:
        cls = type(v)
        if cls in ATOMS or cls is bytes:
            return v
        ref = self.refs.get(id(v))
        if ref is not None:
            return Ref(ref)
        c, atoms = self.copy, ATOMS
        if cls is dict:
            return {
                k if type(k) in atoms else c(k): x if type(x) in atoms else c(x)
                for k, x in v.items()
            }
        if cls is list:
            return [x if type(x) in atoms else c(x) for x in v]
        if cls is tuple:
            return tuple([x if type(x) in atoms else c(x) for x in v])
        if cls is OrderedDict:
            out = OrderedDict((k, c(x)) for k, x in v.items())
            meta = getattr(v, "_metadata", None)  # torch's state_dict versioning
            if meta is not None:
                setattr(out, "_metadata", c(meta))  # noqa: B010
            return out
        if cls is Ref:
            if v.name not in self.objects:
                raise CheckpointError(
                    f"cannot restore: a checkpointed state refers to {v.name!r}, which is not "
                    "among the objects being restored."
                )
            return self.objects[v.name]
        torch = self.torch
        if torch is not None and isinstance(v, torch.Tensor) and v.layout == torch.strided:
            t = v.detach().clone()
            return t.requires_grad_() if v.requires_grad and t.is_floating_point() else t
        tag = np_tag(v)
        if tag is not None:
            return v.copy() if tag == "a" else v
        if not self.allow_pickle:
            raise _Unsafe(v)
        return copy.deepcopy(v)


def _live_state(obj: Any, kind: str) -> Any:
    """The tree `capture` copies: a new container, so it is never one of the named objects."""
    if kind == "state_dict":
        return obj.state_dict()
    if kind == "tensor":
        return obj.detach()
    if kind == "ndarray":
        return obj.view(sys.modules["numpy"].ndarray)
    if kind == "dict":
        return dict(obj)
    if kind == "generator":
        return generator_state(obj)
    return list(obj) if kind == "list" else dict(vars(obj))


def _path_to(tree: Any, target: object, path: str) -> str | None:
    """Where `target` sits in `tree`, for error messages (slow; only on failure)."""
    if tree is target:
        return path
    if isinstance(tree, dict):
        items: Any = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return None
    for key, value in items:
        found = _path_to(value, target, f"{path}[{key!r}]")
        if found is not None:
            return found
    return None


def _unsafe_message(name: str, obj: Any, kind: str, value: object) -> str:
    tree = _live_state(obj, kind)
    where = None
    if kind == "object":
        for attr, attr_value in tree.items():
            where = where or _path_to(attr_value, value, f"{name}.{attr}")
    else:
        where = _path_to(tree, value, name + (".state_dict()" if kind == "state_dict" else ""))
    what = where or f"a value inside {name}"
    return (
        f"cannot checkpoint {name!r}: {what} is a {typename(value)}, which can only be saved "
        f"with pickle; pass allow_pickle=True (or set {PICKLE_ENV}=1) if you trust the "
        "checkpoint store."
    )


def _capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"random": random.getstate()}
    np = sys.modules.get("numpy")
    if np is not None:
        state["numpy"] = np.random.get_state(legacy=False)
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch"] = torch.get_rng_state()
        if torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def capture(objects: dict[str, object], *, allow_pickle: bool | None = None) -> Snapshot:
    """Copy every named object's state and the RNG states, so training can go on at once."""
    kinds = kinds_of(objects)
    refs = {id(obj): name for name, obj in objects.items()}
    copier = Copier(refs, objects, pickle_allowed(allow_pickle))
    entries: dict[str, Entry] = {}
    for name, obj in objects.items():
        kind = kinds[name]
        try:
            entries[name] = Entry(kind, copier.copy(_live_state(obj, kind)))
        except _Unsafe as exc:
            raise CheckpointError(_unsafe_message(name, obj, kind, exc.value)) from None
        except RecursionError as exc:
            raise CheckpointError(
                f"cannot checkpoint {name!r}: its state contains a reference cycle."
            ) from exc
        except (TypeError, copy.Error, pickle.PicklingError) as exc:
            raise CheckpointError(f"cannot checkpoint {name!r}: {exc}.") from exc
    entries[RNG_PART] = Entry("rng", _capture_rng())
    return Snapshot(entries)
