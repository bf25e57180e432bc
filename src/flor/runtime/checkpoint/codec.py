"""`Snapshot`: a captured state as deterministic bytes, and back.

One *part* per named object plus one for the RNG states (key `"@rng"`), so a
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

Pickled values are marked in their part's header, and `from_bytes`/`from_parts` refuse
them unless they are also given `allow_pickle=True` (or `FLOR_CKPT_PICKLE=1`): opting in
states that the store is trusted.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import struct
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from flor.errors import CheckpointError
from flor.runtime.checkpoint.kinds import (
    ATOMS,
    PICKLE_ENV,
    RNG_PART,
    Entry,
    Ref,
    is_tensor,
    np_tag,
    pickle_allowed,
)

_PART_MAGIC = b"FLORCKP1"
_SNAP_MAGIC = b"FLORSNP1"
_CORRUPT = (ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError, RuntimeError)


class _Encoder:
    """Turns a state tree into JSON, collecting tensors, arrays and pickled values aside."""

    def __init__(self) -> None:
        self.tensors: list[Any] = []
        self.arrays: list[Any] = []
        self.pickles: list[Any] = []

    def enc(self, v: Any) -> Any:
        cls = type(v)
        if cls in ATOMS:
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
        if cls is Ref:
            return ["R", v.name]
        if cls is bytes:
            return ["B", base64.b64encode(v).decode("ascii")]
        if is_tensor(v):
            self.tensors.append(v)
            return ["t", len(self.tensors) - 1]
        tag = np_tag(v)
        if tag is not None:
            self.arrays.append(v)
            return [tag, len(self.arrays) - 1]
        self.pickles.append(v)
        return ["P", len(self.pickles) - 1]


def write_part(buf: io.BytesIO, name: str, entry: Entry) -> None:
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


def encode_part(name: str, entry: Entry) -> bytes:
    buf = io.BytesIO()
    write_part(buf, name, entry)
    return buf.getvalue()


class _Decoder:
    def __init__(self, tensors: list[Any], arrays: list[Any], pickles: list[Any]) -> None:
        self.tensors, self.arrays, self.pickles = tensors, arrays, pickles

    def dec(self, v: Any) -> Any:
        if type(v) in ATOMS:
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
            return Ref(str(v[1]))
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


def decode_part(name: str, data: bytes | memoryview, allow_pickle: bool) -> Entry:
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
        return Entry(kind, _Decoder(tensors, arrays, pickles).dec(header["tree"]))
    except CheckpointError:
        raise
    except (*_CORRUPT, struct.error, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"checkpoint part {name!r} is corrupt or unsafe: {exc}") from exc


# --------------------------------------------------------------------------- snapshot


class Snapshot:
    """A self-contained copy of the named objects' states and the RNG states."""

    __slots__ = ("_entries",)

    def __init__(self, entries: dict[str, Entry]) -> None:
        if RNG_PART not in entries:
            raise CheckpointError("a checkpoint must hold the RNG states; this one does not.")
        self._entries = entries

    @property
    def entries(self) -> Mapping[str, Entry]:
        """The copied state of each object, and of the RNGs under `RNG_PART`."""
        return self._entries

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the checkpointed objects (without the RNG part)."""
        return tuple(n for n in self._entries if n != RNG_PART)

    def iter_parts(self) -> Iterator[tuple[str, bytes]]:
        """The parts one at a time, so a writer holds one serialized part in memory, not all."""
        for name, entry in self._entries.items():
            yield name, encode_part(name, entry)

    def parts(self) -> dict[str, bytes]:
        """One deterministic blob per object plus `"@rng"`, so a store can dedupe each."""
        return {name: encode_part(name, entry) for name, entry in self._entries.items()}

    @classmethod
    def from_parts(
        cls, parts: Mapping[str, bytes | memoryview], *, allow_pickle: bool | None = None
    ) -> Snapshot:
        """Rebuild from `parts()`; pickled values only with `allow_pickle` (see module doc)."""
        ok = pickle_allowed(allow_pickle)
        return cls({name: decode_part(name, data, ok) for name, data in parts.items()})

    def to_bytes(self) -> bytes:
        """All parts in one blob, with an index of their lengths at the end."""
        buf = io.BytesIO()
        buf.write(_SNAP_MAGIC)
        index = []
        for name, entry in self._entries.items():
            start = buf.tell()
            write_part(buf, name, entry)
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
