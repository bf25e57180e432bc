from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flor.store.values import decode, encode

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)


@given(json_like)
def test_json_values_round_trip(value) -> None:  # type: ignore[no-untyped-def]
    assert decode(*encode(value)) == value


@pytest.mark.parametrize("value", [np.float64(2.5), np.int32(3), np.array(1.25)])
def test_numpy_scalars_become_numbers(value) -> None:  # type: ignore[no-untyped-def]
    text, kind = encode(value)
    assert kind in ("float", "int") and decode(text, kind) == value.item()


def test_non_finite_floats_and_foreign_objects() -> None:
    assert math.isinf(decode(*encode(float("inf"))))
    text, kind = encode(object())
    assert kind == "repr:builtins.object" and text.startswith("<object object")
    assert decode(*encode((1, 2))) == [1, 2]


class _RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (_RaisingRepr(), "unrepresentable:test_values._RaisingRepr"),
        (_nested(100_000), "unrepresentable:builtins.list"),
    ],
)
def test_a_value_that_cannot_be_converted_becomes_a_tagged_placeholder(value, kind) -> None:  # type: ignore[no-untyped-def]
    text, tag = encode(value)
    assert tag == kind and text is not None and "raised" in text


@pytest.mark.parametrize("value", ["lone \ud800 surrogate", "nul \x00 inside", "\udcff"])
def test_strings_no_backend_can_store_round_trip_through_json(value: str) -> None:
    text, kind = encode(value)
    assert text is not None and "\x00" not in text
    text.encode("utf-8")  # storable by every driver
    assert decode(text, kind) == value


def test_a_repr_with_unstorable_characters_is_escaped() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "odd\x00\udc80"

    text, kind = encode(Odd())
    assert kind.startswith("repr:") and text == "odd\\x00\\udc80"
