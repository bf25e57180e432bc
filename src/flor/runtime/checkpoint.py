"""Capture, serialize and restore in place the objects named by `flor.checkpointing`.

Why it is built this way:

- `capture` runs on the training path, so it only copies (tensors cloned, arrays copied,
  containers rebuilt) and checks that everything can be saved safely; turning the copy into
  bytes (`Snapshot.parts` / `Snapshot.to_bytes`) is a separate step that may run on a
  background thread, because training no longer mutates the copy.
- Objects are restored *in place*, so the user's variables keep pointing at the same
  objects: `load_state_dict` for anything that has one (torch modules, optimizers, LR
  schedulers), `Tensor.copy_` for tensors, `arr[...] = saved` for numpy arrays,
  `clear()` + `update`/`extend` for dicts and lists, and `__dict__` replacement for plain
  objects (which covers scikit-learn estimators). Immutable values cannot be restored in
  place and are refused by `validate_objects`.
- Every snapshot holds the RNG states too (`random`; numpy's global generator and torch's
  CPU generator when those modules are imported) so a restored iteration draws the same
  batches, dropout masks and noise.
- When one named object's state refers to another named object (`state["net"] is net`),
  the reference is kept as a reference and restored to that same object, not to a copy.

Format: one *part* per named object plus one for the RNG states (key `"@rng"`), so a
content-addressed store hashes each part on its own and an unchanged object (frozen
layers, or the state at the start of an iteration, which equals the previous iteration's
end) is stored once. `Snapshot.parts()`/`from_parts()` expose them; `to_bytes()` puts them
in one blob with an index of lengths at the end. A part is `MAGIC | sections | JSON header
| u32 header length` (header last, so sections stream into one buffer without extra
copies): the header holds the value tree, with containers tagged (`["D", pairs]`,
`["T", items]`, ...) and tensors and arrays as indices into the sections, which are one
`torch.save` of the part's tensors (read back with `torch.load(weights_only=True)`) and
one `np.save` per array (read back with `allow_pickle=False`). Loading those never runs
code from the file. Parts are byte-deterministic, which is what makes dedupe work.

Pickle fallback (explicit, both ways): any other value, such as an estimator's loss
object, a numpy object array or a dict subclass inside a state, can only be pickled.
`capture` refuses it, naming the object and attribute, unless `allow_pickle=True` is
passed (or `FLOR_CKPT_PICKLE=1` is set when the argument is left at None). Pickled values
are marked in their part's header, and `from_bytes`/`from_parts` refuse them unless they
are also given `allow_pickle=True` (or the environment variable): opting in states that
the store is trusted.

Generators named in `flor.checkpointing` (a `random.Random`, a numpy `Generator` or
`RandomState`, a `torch.Generator`) are saved by their own state, not their `__dict__`;
CUDA generators are captured with the RNG states when CUDA is initialized.

Limits: two attributes sharing one unnamed list or array get separate copies on restore.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import io
import json
import os
import pickle
import random
import struct
import sys
import tempfile
import types
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flor.errors import CheckpointError

RNG_PART = "@rng"
PICKLE_ENV = "FLOR_CKPT_PICKLE"
SUPPORTED = (
    "objects with state_dict(), torch tensors, numpy arrays, dicts, lists, objects with __dict__"
)

_PART_MAGIC = b"FLORCKP1"
_SNAP_MAGIC = b"FLORSNP1"
_ATOMS = frozenset({str, int, float, bool, type(None)})
_HEX = frozenset("0123456789abcdef")
_NOT_STATE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
)
_CORRUPT = (ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError, RuntimeError)


@dataclass(frozen=True)
class _Ref:
    """A reference, inside one object's state, to another named object."""

    name: str


@dataclass(frozen=True)
class _Entry:
    """The copied state of one named object; `kind` says how to restore it."""

    kind: str  # state_dict | tensor | ndarray | dict | list | object | generator | rng
    state: Any


# --------------------------------------------------------------------------- validation


def _typename(obj: object) -> str:
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_tensor(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _np_tag(v: Any) -> str | None:
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
    if _generator_state(obj) is not None:
        return "generator", ""
    if _is_tensor(obj):
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


def _generator_state(obj: object) -> Any:
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


def _set_generator_state(obj: Any, state: Any) -> None:
    if isinstance(obj, random.Random):
        obj.setstate(state)
    elif type(obj).__name__ == "RandomState":
        obj.set_state(state)
    elif hasattr(obj, "bit_generator"):
        obj.bit_generator.state = state
    else:
        obj.set_state(state)


def _kinds(objects: Mapping[str, object]) -> dict[str, str]:
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
                f"cannot checkpoint {name!r} of type {_typename(obj)}: {why}; "
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
    _kinds(objects)


def _pickle_allowed(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- capture


class _Unsafe(Exception):
    """A value with no safe encoding was met while pickling is not allowed."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


class _Copier:
    """Deep copy of state trees: tensors cloned, arrays copied, containers rebuilt.

    At capture, references to named objects become `_Ref`s and values without a safe
    encoding raise `_Unsafe` unless pickling is allowed; at restore, `_Ref`s become the
    live objects again. Atoms are checked inline: long lists of numbers are common.
    """

    def __init__(
        self, refs: dict[int, str], objects: Mapping[str, object], allow_pickle: bool
    ) -> None:
        self.refs, self.objects, self.allow_pickle = refs, objects, allow_pickle
        self.torch = sys.modules.get("torch")

    def copy(self, v: Any) -> Any:
        cls = type(v)
        if cls in _ATOMS or cls is bytes:
            return v
        ref = self.refs.get(id(v))
        if ref is not None:
            return _Ref(ref)
        c, atoms = self.copy, _ATOMS
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
        if cls is _Ref:
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
        np_tag = _np_tag(v)
        if np_tag is not None:
            return v.copy() if np_tag == "a" else v
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
        return _generator_state(obj)
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
        f"cannot checkpoint {name!r}: {what} is a {_typename(value)}, which can only be saved "
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
    kinds = _kinds(objects)
    refs = {id(obj): name for name, obj in objects.items()}
    copier = _Copier(refs, objects, _pickle_allowed(allow_pickle))
    entries: dict[str, _Entry] = {}
    for name, obj in objects.items():
        kind = kinds[name]
        try:
            entries[name] = _Entry(kind, copier.copy(_live_state(obj, kind)))
        except _Unsafe as exc:
            raise CheckpointError(_unsafe_message(name, obj, kind, exc.value)) from None
        except RecursionError as exc:
            raise CheckpointError(
                f"cannot checkpoint {name!r}: its state contains a reference cycle."
            ) from exc
        except (TypeError, copy.Error, pickle.PicklingError) as exc:
            raise CheckpointError(f"cannot checkpoint {name!r}: {exc}.") from exc
    entries[RNG_PART] = _Entry("rng", _capture_rng())
    return Snapshot(entries)


# --------------------------------------------------------------------------- restore


def _check_restorable(name: str, obj: Any, kind: str, entry: _Entry | None) -> _Entry:
    if entry is None:
        raise CheckpointError(f"cannot restore {name!r}: the checkpoint holds no state for it.")
    if entry.kind != kind:
        raise CheckpointError(
            f"cannot restore {name!r}: it was checkpointed as {entry.kind!r} but is now "
            f"{kind!r} ({_typename(obj)})."
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
        _set_generator_state(obj, fresh)
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
    kinds = _kinds(objects)
    entries = snap._entries
    thaw = _Copier({}, objects, allow_pickle=True)
    fresh: dict[str, Any] = {}
    for name, obj in objects.items():  # check and copy everything before mutating anything
        entry = _check_restorable(name, obj, kinds[name], entries.get(name))
        # copy_ and arr[...] = copy the saved data; anything else would alias the snapshot
        plain = entry.kind in ("tensor", "ndarray")
        fresh[name] = entry.state if plain else thaw.copy(entry.state)
    for name, obj in objects.items():
        _restore_one(name, obj, kinds[name], fresh[name])
    _restore_rng(entries[RNG_PART].state)


# --------------------------------------------------------------------------- encoding


class _Encoder:
    """Turns a state tree into JSON, collecting tensors, arrays and pickled values aside."""

    def __init__(self) -> None:
        self.tensors: list[Any] = []
        self.arrays: list[Any] = []
        self.pickles: list[Any] = []

    def enc(self, v: Any) -> Any:
        cls = type(v)
        if cls in _ATOMS:
            return v
        if cls is list:
            return ["L", [self.enc(x) for x in v]]
        if cls is tuple:
            return ["T", [self.enc(x) for x in v]]
        if cls is dict:
            return ["D", [[self.enc(k), self.enc(x)] for k, x in v.items()]]
        if cls is OrderedDict:
            pairs = [[self.enc(k), self.enc(x)] for k, x in v.items()]
            return ["O", pairs, self.enc(getattr(v, "_metadata", None))]
        if cls is _Ref:
            return ["R", v.name]
        if cls is bytes:
            return ["B", base64.b64encode(v).decode("ascii")]
        if _is_tensor(v):
            self.tensors.append(v)
            return ["t", len(self.tensors) - 1]
        np_tag = _np_tag(v)
        if np_tag is not None:
            self.arrays.append(v)
            return [np_tag, len(self.arrays) - 1]
        self.pickles.append(v)
        return ["P", len(self.pickles) - 1]


def _write_part(buf: io.BytesIO, name: str, entry: _Entry) -> None:
    """Append `MAGIC | tensors | arrays... | pickles... | JSON header | u32 header length`.

    The header goes last so every section is written straight into one buffer: on the
    checkpoint path each extra copy of the state costs as much as the serialization.
    """
    enc = _Encoder()
    tree = enc.enc(entry.state)
    buf.write(_PART_MAGIC)
    begin = buf.tell()

    tensors = 0
    if enc.tensors:
        import torch

        torch.save(enc.tensors, buf)
        tensors = buf.tell() - begin
    arrays: list[int] = []
    for arr in enc.arrays:
        start = buf.tell()
        sys.modules["numpy"].save(buf, arr, allow_pickle=False)
        arrays.append(buf.tell() - start)
    pickles: list[int] = []
    for value in enc.pickles:
        start = buf.tell()
        try:
            pickle.dump(value, buf, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"cannot serialize checkpoint part {name!r}: {exc}.") from exc
        pickles.append(buf.tell() - start)
    header = {
        "kind": entry.kind,
        "tree": tree,
        "tensors": tensors,
        "arrays": arrays,
        "pickles": pickles,
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    buf.write(head)
    buf.write(struct.pack("<I", len(head)))


def _encode_part(name: str, entry: _Entry) -> bytes:
    buf = io.BytesIO()
    _write_part(buf, name, entry)
    return buf.getvalue()


class _Decoder:
    def __init__(self, tensors: list[Any], arrays: list[Any], pickles: list[Any]) -> None:
        self.tensors, self.arrays, self.pickles = tensors, arrays, pickles

    def dec(self, v: Any) -> Any:
        if type(v) in _ATOMS:
            return v
        tag = v[0]
        if tag == "L":
            return [self.dec(x) for x in v[1]]
        if tag == "T":
            return tuple(self.dec(x) for x in v[1])
        if tag == "D":
            return {self.dec(k): self.dec(x) for k, x in v[1]}
        if tag == "O":
            out = OrderedDict((self.dec(k), self.dec(x)) for k, x in v[1])
            meta = self.dec(v[2])
            if meta is not None:
                setattr(out, "_metadata", meta)  # noqa: B010
            return out
        if tag == "R":
            return _Ref(str(v[1]))
        if tag == "B":
            return base64.b64decode(v[1])
        if tag == "t":
            return self.tensors[v[1]]
        if tag == "a":
            return self.arrays[v[1]]
        if tag == "s":
            return self.arrays[v[1]][()]
        if tag == "P":
            return self.pickles[v[1]]
        raise ValueError(f"unknown tag {tag!r}")


def _decode_part(name: str, data: bytes | memoryview, allow_pickle: bool) -> _Entry:
    try:
        if len(data) < len(_PART_MAGIC) + 4 or bytes(data[: len(_PART_MAGIC)]) != _PART_MAGIC:
            raise ValueError("not a flor checkpoint part")
        (hlen,) = struct.unpack_from("<I", data, len(data) - 4)
        end = len(data) - 4 - hlen
        if end < len(_PART_MAGIC):
            raise ValueError("header length does not fit the data")
        header = json.loads(bytes(data[end : len(data) - 4]))
        pos = len(_PART_MAGIC)
        lengths = [int(header["tensors"]), *map(int, header["arrays"])]
        pickle_lengths = list(map(int, header["pickles"]))
        if pickle_lengths and not allow_pickle:
            raise CheckpointError(
                f"refusing to load checkpoint part {name!r}: it contains pickled values, and "
                f"unpickling can run arbitrary code; pass allow_pickle=True (or set "
                f"{PICKLE_ENV}=1) only if you trust the checkpoint store."
            )
        if (
            min([0, *lengths, *pickle_lengths]) < 0
            or pos + sum(lengths) + sum(pickle_lengths) != end
        ):
            raise ValueError("section lengths do not match the data")
        view, chunks = memoryview(data), []
        for n in [*lengths, *pickle_lengths]:
            chunks.append(view[pos : pos + n])
            pos += n
        tensors: list[Any] = []
        if lengths[0]:
            import torch

            tensors = torch.load(io.BytesIO(chunks[0]), weights_only=True)
            if not isinstance(tensors, list):
                raise ValueError("tensor section is not a list")
        arrays: list[Any] = []
        if len(lengths) > 1:
            import numpy as np

            arrays = [np.load(io.BytesIO(c), allow_pickle=False) for c in chunks[1 : len(lengths)]]
        pickles = [pickle.loads(c) for c in chunks[len(lengths) :]]
        kind = str(header["kind"])
        return _Entry(kind, _Decoder(tensors, arrays, pickles).dec(header["tree"]))
    except CheckpointError:
        raise
    except (*_CORRUPT, struct.error, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"checkpoint part {name!r} is corrupt or unsafe: {exc}") from exc


# --------------------------------------------------------------------------- snapshot


class Snapshot:
    """A self-contained copy of the named objects' states and the RNG states."""

    __slots__ = ("_entries",)

    def __init__(self, entries: dict[str, _Entry]) -> None:
        if RNG_PART not in entries:
            raise CheckpointError("a checkpoint must hold the RNG states; this one does not.")
        self._entries = entries

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the checkpointed objects (without the RNG part)."""
        return tuple(n for n in self._entries if n != RNG_PART)

    def iter_parts(self) -> Iterator[tuple[str, bytes]]:
        """The parts one at a time, so a writer holds one serialized part in memory, not all."""
        for name, entry in self._entries.items():
            yield name, _encode_part(name, entry)

    def parts(self) -> dict[str, bytes]:
        """One deterministic blob per object plus `"@rng"`, so a store can dedupe each."""
        return {name: _encode_part(name, entry) for name, entry in self._entries.items()}

    @classmethod
    def from_parts(
        cls, parts: Mapping[str, bytes | memoryview], *, allow_pickle: bool | None = None
    ) -> Snapshot:
        """Rebuild from `parts()`; pickled values only with `allow_pickle` (see module doc)."""
        ok = _pickle_allowed(allow_pickle)
        return cls({name: _decode_part(name, data, ok) for name, data in parts.items()})

    def to_bytes(self) -> bytes:
        """All parts in one blob, with an index of their lengths at the end."""
        buf = io.BytesIO()
        buf.write(_SNAP_MAGIC)
        index = []
        for name, entry in self._entries.items():
            start = buf.tell()
            _write_part(buf, name, entry)
            index.append([name, buf.tell() - start])
        head = json.dumps(index).encode()
        buf.write(head)
        buf.write(struct.pack("<I", len(head)))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, allow_pickle: bool | None = None) -> Snapshot:
        """Rebuild from `to_bytes()`; pickled values only with `allow_pickle`."""
        view = memoryview(data)
        try:
            if len(view) < len(_SNAP_MAGIC) + 4 or bytes(view[: len(_SNAP_MAGIC)]) != _SNAP_MAGIC:
                raise ValueError("not a flor checkpoint")
            (ilen,) = struct.unpack_from("<I", view, len(view) - 4)
            end = len(view) - 4 - ilen
            index = json.loads(bytes(view[max(end, 0) : len(view) - 4]))
            parts: dict[str, memoryview] = {}
            pos = len(_SNAP_MAGIC)
            for name, n in index:
                if int(n) < 0:
                    raise ValueError("negative part length")
                parts[str(name)] = view[pos : pos + int(n)]
                pos += int(n)
            if pos != end:
                raise ValueError("part lengths do not match the data")
        except (ValueError, TypeError, struct.error) as exc:
            raise CheckpointError(f"checkpoint is corrupt: {exc}") from exc
        return cls.from_parts(parts, allow_pickle=allow_pickle)


# --------------------------------------------------------------------------- blob store


class _LocalFiles:
    """Blob files in a local folder, each written to a temporary file and renamed into place."""

    errors: tuple[type[BaseException], ...] = (OSError,)
    fix = "free disk space or make the directory writable"
    _TMP_PREFIX = ".tmp-"

    def __init__(self, root: Path) -> None:
        self.root = root

    def size(self, key: str) -> int | None:
        path = self.root / key
        return path.stat().st_size if path.is_file() else None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self._TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str, length: int | None = None) -> bytes:
        with open(self.root / key, "rb") as f:
            return f.read() if length is None else f.read(length)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def touch(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.root / key)

    @contextlib.contextmanager
    def lock(self, exclusive: bool, wait: bool = True) -> Iterator[None]:
        """A lock file in the folder: writers share it, `flor gc` takes it alone."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / _LOCK_FILE, "a+b") as f:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            try:
                fcntl.flock(f, mode if wait else mode | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CheckpointError(
                    f"a run is writing checkpoints under {self.root} right now: try again"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def stats(self) -> dict[str, tuple[int, float | None]]:
        """(bytes, modification time) of every file under the two-letter folders."""
        if not self.root.is_dir():
            return {}
        out: dict[str, tuple[int, float | None]] = {}
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sub.iterdir():
                try:
                    stat = f.stat()
                except FileNotFoundError:
                    continue  # deleted concurrently
                out[f"{sub.name}/{f.name}"] = (stat.st_size, stat.st_mtime)
        return out


class _RemoteFiles:
    """Blob files at an fsspec URL. One `pipe_file` per blob: object stores (s3, gs) make a
    PUT atomic; elsewhere a torn write is caught by `put`'s size check and `get`'s hash."""

    # Backends raise their own exception types (botocore, google.auth), not only OSError.
    errors: tuple[type[BaseException], ...] = (Exception,)
    fix = "check the URL and that this machine's credentials may write there"

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise CheckpointError(
                f"the checkpoint home {url} needs fsspec: pip install 'flor[remote]'"
            ) from None
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise CheckpointError(
                f"cannot open the checkpoint home {url}: {exc}; use a folder or a URL fsspec "
                "supports (file://, s3:// with s3fs, gs:// with gcsfs)"
            ) from None
        self.root = root.rstrip("/")

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.size(f"{self.root}/{key}"))
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = f"{self.root}/{key}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)

    def read(self, key: str, length: int | None = None) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/{key}", start=0, end=length))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.root}/{key}")

    def touch(self, key: str) -> None:
        """Object stores cannot change a modification time: rewriting is their only touch."""
        with contextlib.suppress(NotImplementedError, FileNotFoundError):
            self.fs.touch(f"{self.root}/{key}", truncate=False)

    @contextlib.contextmanager
    def lock(self, exclusive: bool, wait: bool = True) -> Iterator[None]:
        """No lock spans machines: the grace period alone protects blobs being written."""
        yield

    def stats(self) -> dict[str, tuple[int, float | None]]:
        if not self.fs.exists(self.root):
            return {}
        found = self.fs.find(self.root, detail=True)
        start = len(self.root) + 1
        return {path[start:]: (int(info["size"]), _mtime(info)) for path, info in found.items()}


def _mtime(info: dict[str, Any]) -> float | None:
    """A listing's modification time, as each fsspec backend spells it."""
    for key in ("mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        timestamp = getattr(value, "timestamp", None)
        if callable(timestamp):
            return float(timestamp())
        if isinstance(value, str):
            from datetime import datetime

            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


_LOCK_FILE = ".lock"


def _digest_of(key: str) -> str | None:
    """The digest a file key `aa/bbbb...` stores, or None for any other file."""
    digest = key[:2] + key[3:]
    return digest if len(key) == 65 and key[2] == "/" and _HEX.issuperset(digest) else None


class BlobStore:
    """Content-addressed blobs under `location/aa/bbbb...` (sha256).

    `location` is a folder, or an fsspec URL (`s3://bucket/prefix`, `gs://...`, `file://...`)
    so that cluster workers which share no filesystem read what a run wrote; fsspec is
    imported only for URLs, which keeps recording to a folder light.
    """

    def __init__(self, location: Path | str) -> None:
        self.location = str(location)
        self._files = (
            _RemoteFiles(self.location) if "://" in self.location else _LocalFiles(Path(location))
        )

    @staticmethod
    def _key(digest: str) -> str:
        if len(digest) != 64 or not _HEX.issuperset(digest):
            raise CheckpointError(f"{digest!r} is not a sha256 hex digest.")
        return f"{digest[:2]}/{digest[2:]}"

    def put(self, data: bytes) -> tuple[str, int]:
        """Store `data` once; a crash leaves either the whole blob or none of it visible."""
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        try:
            if self._files.size(key) == len(data):
                self._files.touch(key)  # young again: `flor gc` spares it for its grace period
                return digest, len(data)
            self._files.write(key, data)
        except self._files.errors as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise CheckpointError(
                f"cannot write a checkpoint under {self.location}: {reason}; {self._files.fix}."
            ) from exc
        return digest, len(data)

    def get(self, digest: str) -> bytes:
        """The blob's bytes, verified against its digest."""
        data = self._read(digest)
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError(
                f"checkpoint blob {digest} in {self.location} is corrupt (its hash does not match)."
            )
        return data

    def check_readable(self, digest: str) -> None:
        """Read one byte of a blob: proves access (a replay worker's credentials, its mounts)
        without fetching a whole model."""
        self._read(digest, 1)

    def _read(self, digest: str, length: int | None = None) -> bytes:
        key = self._key(digest)
        try:
            return self._files.read(key, length)
        except FileNotFoundError as exc:
            raise CheckpointError(
                f"checkpoint blob {digest} is missing from {self.location}."
            ) from exc
        except self._files.errors as exc:
            raise CheckpointError(
                f"cannot read checkpoint blob {digest} from {self.location}: {exc}"
            ) from exc

    def delete(self, digest: str) -> None:
        """Remove a blob if present (for gc); its directory stays, for concurrent writers."""
        self._files.delete(self._key(digest))

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while writing blobs and the rows that refer to them: `flor gc` waits."""
        return self._files.lock(exclusive=False)

    def collecting(self, wait: bool = True) -> contextlib.AbstractContextManager[None]:
        """Hold while collecting garbage: no writer is between a blob and its row."""
        return self._files.lock(exclusive=True, wait=wait)

    def garbage(self, referenced: set[str], older_than: float) -> list[tuple[str, int]]:
        """(file key, bytes) of blobs not in `referenced` and of temporary files left by
        interrupted writes, both last modified before `older_than` (a file without a
        modification time counts as old). Sizes come from the listing: nothing is read."""
        found = []
        for key, (size, mtime) in sorted(self._files.stats().items()):
            if mtime is not None and mtime >= older_than:
                continue
            digest = _digest_of(key)
            stale_temp = digest is None and key[3:].startswith(_LocalFiles._TMP_PREFIX)
            if stale_temp or (digest is not None and digest not in referenced):
                found.append((key, size))
        return found

    def remove(self, key: str) -> None:
        """Remove one file listed by `garbage`."""
        self._files.delete(key)

    def _sizes(self) -> dict[str, int]:
        """Bytes per stored blob; temporary files of unfinished writes are not blobs."""
        out = {}
        for key, (size, _) in self._files.stats().items():
            digest = _digest_of(key)
            if digest is not None:
                out[digest] = size
        return out

    def digests(self) -> set[str]:
        """Every stored blob (temporary files of unfinished writes excluded)."""
        return set(self._sizes())

    def total_bytes(self) -> int:
        """Bytes held by stored blobs."""
        return sum(self._sizes().values())
