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
