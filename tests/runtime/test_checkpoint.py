"""Checkpoint capture, serialization and in-place restore (real torch and numpy)."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from flor.blobs import BlobStore
from flor.errors import CheckpointError
from flor.runtime.checkpoint import RNG_PART, Snapshot, capture, restore
from flor.runtime.checkpoint import validate_objects as validate


def roundtrip_memory(snap: Snapshot) -> Snapshot:
    return snap


def roundtrip_bytes(snap: Snapshot) -> Snapshot:
    return Snapshot.from_bytes(snap.to_bytes())


def roundtrip_parts(snap: Snapshot) -> Snapshot:
    return Snapshot.from_parts(snap.parts())


ROUNDTRIPS = pytest.mark.parametrize(
    "roundtrip", [roundtrip_memory, roundtrip_bytes, roundtrip_parts], ids=["mem", "bytes", "parts"]
)


class Estimator:
    """Shaped like a fitted scikit-learn estimator: hyper-parameters and fitted arrays."""

    def __init__(self) -> None:
        self.alpha = 0.5
        self.coef_ = np.zeros(3)
        self.n_iter_ = np.int64(0)
        self.classes_ = ["a", "b"]
        self.meta = {"seen": (1, 2), 3: None, b"k": 1.5}


class Opaque:
    """A value that has no safe encoding: it can only be pickled."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.x == self.x


class Evil:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


# --------------------------------------------------------------------------- in place


@ROUNDTRIPS
def test_torch_module_optimizer_scheduler_restore_in_place(roundtrip) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    objs = {"net": net, "opt": opt, "sched": sched}
    weight = net.weight
    net(torch.randn(3, 4)).sum().backward()
    opt.step()
    sched.step()
    snap = roundtrip(capture(objs))
    saved_w = net.weight.detach().clone()
    saved_opt = opt.state_dict()["state"][0]["exp_avg"].clone()
    for _ in range(3):
        net(torch.randn(3, 4)).sum().backward()
        opt.step()
        sched.step()
    restore(objs, snap)
    assert net.weight is weight
    assert torch.equal(net.weight, saved_w)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], saved_opt)
    assert sched.last_epoch == 1 and sched.get_last_lr() == [0.05]
    assert opt.param_groups[0]["lr"] == 0.05
    assert opt.param_groups[0]["params"][0] is weight


@ROUNDTRIPS
def test_tensor_and_arrays_restore_in_place(roundtrip) -> None:
    t = torch.arange(6.0).reshape(2, 3).requires_grad_()
    arr = np.arange(5.0)
    zero_d = np.array(7, dtype=np.int32)
    objs = {"t": t, "arr": arr, "zero_d": zero_d}
    snap = roundtrip(capture(objs))
    with torch.no_grad():
        t.mul_(0)
    arr[:] = -1
    zero_d[...] = 0
    restore(objs, snap)
    assert torch.equal(t.detach(), torch.arange(6.0).reshape(2, 3)) and t.requires_grad
    assert arr.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert int(zero_d) == 7 and zero_d.dtype == np.int32


@ROUNDTRIPS
def test_containers_and_plain_objects_restore_in_place(roundtrip) -> None:
    d = defaultdict(list, {"a": [1, 2], "t": torch.ones(2), 5: (1, "x")})
    lst = [1, {"k": np.ones(2)}, [3.5, None, float("inf")]]
    est = Estimator()
    objs = {"d": d, "lst": lst, "est": est}
    snap = roundtrip(capture(objs))
    d["a"].append(3)
    d["new"] = 1
    lst[1]["k"][0] = 9
    lst.append("extra")
    est.coef_ = np.ones(3)
    est.n_iter_ = np.int64(5)
    est.meta["seen"] = ()
    est.fitted_ = True
    restore(objs, snap)
    assert isinstance(d, defaultdict) and set(d) == {"a", "t", 5}
    assert d["a"] == [1, 2] and torch.equal(d["t"], torch.ones(2)) and d[5] == (1, "x")
    assert lst[0] == 1 and lst[1]["k"].tolist() == [1.0, 1.0] and lst[2] == [3.5, None, np.inf]
    assert len(lst) == 3
    assert not hasattr(est, "fitted_") and est.coef_.tolist() == [0.0, 0.0, 0.0]
    assert est.n_iter_ == 0 and type(est.n_iter_) is np.int64
    assert est.meta == {"seen": (1, 2), 3: None, b"k": 1.5}


def test_restoring_twice_does_not_alias_the_snapshot() -> None:
    d = {"xs": [1], "t": torch.zeros(2)}
    snap = capture({"d": d})
    restore({"d": d}, snap)
    d["xs"].append(2)
    d["t"].add_(1)
    restore({"d": d}, snap)
    assert d["xs"] == [1] and torch.equal(d["t"], torch.zeros(2))


@ROUNDTRIPS
def test_reference_to_another_named_object_stays_a_reference(roundtrip) -> None:
    arr = np.zeros(2)
    state = {"arr": arr, "epoch": 1}
    state["self"] = state
    snap = roundtrip(capture({"state": state, "arr": arr}))
    state["arr"] = np.ones(2)
    del state["self"]
    restore({"state": state, "arr": arr}, snap)
    assert state["arr"] is arr and state["self"] is state


# --------------------------------------------------------------------------- refusals


def test_immutable_values_are_refused_with_the_supported_kinds() -> None:
    with pytest.raises(CheckpointError) as err:
        validate({"lr": 0.1})
    assert str(err.value) == (
        "cannot checkpoint 'lr' of type float: it cannot be restored in place; supported: "
        "objects with state_dict(), torch tensors, numpy arrays, dicts, lists, "
        "objects with __dict__."
    )
    for bad in (3, "s", (1, 2), None, np.float64(1), os, len, Estimator, Estimator().__init__):
        with pytest.raises(CheckpointError, match="cannot be restored in place"):
            validate({"x": bad})


def test_read_only_arrays_and_slotted_objects_are_refused() -> None:
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    with pytest.raises(CheckpointError, match="'a' of type numpy.ndarray: it is a read-only"):
        validate({"a": frozen})

    class Slotted:
        __slots__ = ("x", "__dict__")

    with pytest.raises(CheckpointError, match="__slots__"):
        validate({"s": Slotted()})


def test_the_same_object_under_two_names_is_refused() -> None:
    net = torch.nn.Linear(1, 1)
    with pytest.raises(CheckpointError, match="'b': it is the same object as 'a'"):
        capture({"a": net, "b": net})


def test_reserved_name_is_refused() -> None:
    with pytest.raises(CheckpointError, match="names must be non-empty strings"):
        validate({RNG_PART: {}})


def test_capture_refuses_pickle_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOR_CKPT_PICKLE", raising=False)
    est = Estimator()
    est.loss_function_ = Opaque(1)
    with pytest.raises(CheckpointError) as err:
        capture({"est": est})
    msg = str(err.value)
    assert "'est'" in msg and "est.loss_function_" in msg and "Opaque" in msg
    assert "allow_pickle=True" in msg and "FLOR_CKPT_PICKLE=1" in msg
    with pytest.raises(CheckpointError, match=r"d\['k'\]\[0\]"):
        capture({"d": {"k": [Opaque(2)]}})
    capture({"est": est}, allow_pickle=True)
    monkeypatch.setenv("FLOR_CKPT_PICKLE", "1")
    capture({"est": est})


def test_values_that_cannot_be_copied_or_pickled_are_checkpoint_errors() -> None:
    import threading

    with pytest.raises(CheckpointError, match="cannot checkpoint 'd': cannot pickle"):
        capture({"d": {"lock": threading.Lock()}}, allow_pickle=True)
    snap = capture({"d": {"f": lambda: 1}}, allow_pickle=True)
    with pytest.raises(CheckpointError, match="cannot serialize checkpoint part 'd'"):
        snap.to_bytes()


def test_from_bytes_refuses_pickle_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOR_CKPT_PICKLE", raising=False)
    est = Estimator()
    est.loss_function_ = Opaque(1)
    data = capture({"est": est}, allow_pickle=True).to_bytes()
    with pytest.raises(CheckpointError, match="refusing to load checkpoint part 'est'.*pickled"):
        Snapshot.from_bytes(data)
    est.loss_function_ = None
    restore({"est": est}, Snapshot.from_bytes(data, allow_pickle=True))
    assert est.loss_function_ == Opaque(1)
    monkeypatch.setenv("FLOR_CKPT_PICKLE", "1")
    Snapshot.from_bytes(data)
    with pytest.raises(CheckpointError, match="pickled"):
        Snapshot.from_bytes(data, allow_pickle=False)


def test_restore_checks_names_kinds_and_shapes_before_mutating() -> None:
    d, arr = {"a": 1}, np.zeros(3)
    snap = capture({"d": d, "arr": arr})
    d["a"] = 2
    with pytest.raises(CheckpointError, match="'other': the checkpoint holds no state"):
        restore({"d": d, "other": []}, snap)
    with pytest.raises(CheckpointError, match="checkpointed as 'ndarray' but is now 'list'"):
        restore({"d": d, "arr": []}, snap)
    with pytest.raises(CheckpointError, match=r"shape \(3,\) and dtype float64"):
        restore({"d": d, "arr": np.zeros(4)}, snap)
    assert d == {"a": 2}


def test_load_state_dict_failures_become_checkpoint_errors() -> None:
    snap = capture({"net": torch.nn.Linear(2, 2)})
    with pytest.raises(CheckpointError, match="cannot restore 'net'"):
        restore({"net": torch.nn.Linear(3, 2)}, snap)


# --------------------------------------------------------------------------- rng


@ROUNDTRIPS
def test_rng_states_are_restored(roundtrip) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in the state
    snap = roundtrip(capture({}))

    def draw() -> tuple:
        return (
            random.random(),
            random.gauss(0, 1),
            np.random.rand(3).tolist(),
            np.random.normal(),
            torch.rand(3).tolist(),
            torch.nn.functional.dropout(torch.ones(8), 0.5).tolist(),
        )

    first = draw()
    restore({}, snap)
    assert draw() == first


# --------------------------------------------------------------------------- exactness


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_restored_training_is_bit_identical() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    xs, ys = torch.randn(64, 8), torch.randn(64, 1)
    net = MLP()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    log = {"losses": []}
    objs = {"net": net, "opt": opt, "sched": sched, "log": log}

    def step() -> float:
        idx = torch.from_numpy(np.random.choice(64, 16, replace=False))
        loss = torch.nn.functional.mse_loss(net(xs[idx]), ys[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log["losses"].append(loss.item())
        return loss.item()

    for _ in range(3):
        step()
    snap = Snapshot.from_parts(capture(objs).parts())
    recorded = [step() for _ in range(6)]
    final = {k: v.clone() for k, v in net.state_dict().items()}
    for _ in range(2):  # twice: a restore must not leave the snapshot aliased
        restore(objs, snap)
        assert [step() for _ in range(6)] == recorded
        assert len(log["losses"]) == 9
    assert all(torch.equal(final[k], v) for k, v in net.state_dict().items())


# --------------------------------------------------------------------------- format


def test_parts_are_deterministic_and_unchanged_objects_dedupe() -> None:
    net, counters = torch.nn.Linear(4, 4), {"step": 0}
    objs = {"net": net, "counters": counters}
    a = capture(objs).parts()
    assert capture(objs).parts() == a
    counters["step"] += 1
    random.random()
    b = capture(objs).parts()
    assert a["net"] == b["net"]
    assert a["counters"] != b["counters"] and a[RNG_PART] != b[RNG_PART]
    assert set(a) == {"net", "counters", RNG_PART}


def test_corrupt_payloads_raise_checkpoint_errors() -> None:
    data = capture({"d": {"a": np.arange(3)}}).to_bytes()
    for bad in (b"", b"junk", data[:-1], data + b"x", data[:40] + b"\x00" + data[41:]):
        with pytest.raises(CheckpointError):
            Snapshot.from_bytes(bad)
    with pytest.raises(CheckpointError, match="RNG"):
        Snapshot.from_parts({"d": capture({"d": {}}).parts()["d"]})


def _part(tree: list, tensors: bytes = b"", arrays: bytes = b"", pickles: bytes = b"") -> bytes:
    """A hand-made part, as an attacker who can write to the store would build it."""
    header = {
        "kind": "dict",
        "tree": tree,
        "tensors": len(tensors),
        "arrays": [len(arrays)] if arrays else [],
        "pickles": [len(pickles)] if pickles else [],
    }
    head = json.dumps(header).encode()
    return b"FLORCKP1" + tensors + arrays + pickles + head + struct.pack("<I", len(head))


def test_malicious_payloads_in_the_store_are_never_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOR_CKPT_PICKLE", raising=False)
    marker = tmp_path / "pwned"
    store = BlobStore(tmp_path / "blobs")
    rng = capture({}).parts()[RNG_PART]
    tensors, npy = io.BytesIO(), io.BytesIO()
    torch.save([Evil(marker)], tensors)
    np.save(npy, np.array([Evil(marker)], dtype=object), allow_pickle=True)
    cases = [
        (_part(["P", 0], pickles=pickle.dumps(Evil(marker))), "refusing to load .*pickled"),
        (_part(["t", 0], tensors=tensors.getvalue()), "corrupt or unsafe: Weights only load"),
        (_part(["a", 0], arrays=npy.getvalue()), "corrupt or unsafe: Object arrays"),
    ]
    for payload, why in cases:
        digest, _ = store.put(payload)
        with pytest.raises(CheckpointError, match=why):
            Snapshot.from_parts({"x": store.get(digest), RNG_PART: rng})
    assert not marker.exists()


# --------------------------------------------------------------------------- blob store


def test_blob_store_dedupes_and_counts(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    assert store.digests() == set() and store.total_bytes() == 0
    digest, n = store.put(b"hello")
    assert (digest, n) == store.put(b"hello")
    assert n == 5 and (tmp_path / "blobs" / digest[:2] / digest[2:]).is_file()
    other, _ = store.put(b"world!")
    assert store.digests() == {digest, other} and store.total_bytes() == 11
    assert store.get(digest) == b"hello"
    store.delete(digest)
    store.delete(digest)
    assert store.digests() == {other}
    with pytest.raises(CheckpointError, match="missing"):
        store.get(digest)


def test_blob_store_detects_corruption_and_repairs_on_put(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest, _ = store.put(b"payload")
    path = tmp_path / digest[:2] / digest[2:]
    path.write_bytes(b"paYload")
    with pytest.raises(CheckpointError, match="corrupt"):
        store.get(digest)
    path.write_bytes(b"pay")
    store.put(b"payload")  # a truncated blob is rewritten
    assert store.get(digest) == b"payload"
    with pytest.raises(CheckpointError, match="not a sha256"):
        store.get("../../etc/passwd")


def test_blob_store_failed_writes_leave_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device; free disk space"):
        store.put(b"data")
    monkeypatch.undo()

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.put(b"data")
    monkeypatch.undo()
    assert store.digests() == set()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    # a writer killed outright leaves its temporary file, which is never listed as a blob
    digest, _ = store.put(b"data")
    (tmp_path / digest[:2] / ".tmp-abandoned").write_bytes(b"da")
    assert store.digests() == {digest} and store.total_bytes() == 4


def test_unwritable_root_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="cannot write a checkpoint under"):
        BlobStore(tmp_path / "file" / "blobs").put(b"x")


# --------------------------------------------------------------------------- laziness


def test_module_works_without_importing_torch_or_numpy() -> None:
    code = textwrap.dedent(
        """
        import random, sys
        from flor.runtime.checkpoint import Snapshot, capture, restore
        class Obj:
            pass
        o, d = Obj(), {"a": [1, (2, 3)]}
        o.x = 1
        snap = Snapshot.from_bytes(capture({"o": o, "d": d}).to_bytes())
        r = random.random()
        o.x, d["a"] = 2, []
        restore({"o": o, "d": d}, snap)
        assert (o.x, d, random.random()) == (1, {"a": [1, (2, 3)]}, r)
        assert "torch" not in sys.modules and "numpy" not in sys.modules, sorted(sys.modules)
        """
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
