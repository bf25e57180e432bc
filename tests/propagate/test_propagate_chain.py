"""Chains through intermediate versions: which versions are visited, each step once."""

from __future__ import annotations

from flor.propagate import PropagationResult
from flor.propagate.chain import StepCache, waypoints


def test_waypoints_skip_repeats_and_broken_versions_and_nest_across_versions() -> None:
    versions = [(f"v{i}", f"x = {i}\n") for i in range(20)]
    versions[5] = ("v5", "async = 1\n")
    versions[6] = ("v6", versions[7][1])
    assert waypoints(versions[:4], max_steps=8) == [0, 1, 2, 3]
    chosen = waypoints(versions, max_steps=4)
    assert [versions[i][1] for i in chosen] == ["x = 1\n", "x = 11\n", "x = 19\n"]
    younger = waypoints(versions[8:], max_steps=4)
    assert {versions[8 + i][1] for i in younger} >= {"x = 11\n", "x = 19\n"}


def test_step_cache_propagates_each_pair_once() -> None:
    calls: list[tuple[str, str]] = []

    def propagate(new: str, old: str) -> PropagationResult:
        calls.append((new, old))
        return PropagationResult(old, [], old)

    steps = StepCache(propagate, size=2)
    for pair in [("a", "b"), ("a", "b"), ("a", "c"), ("a", "b"), ("a", "d"), ("a", "b")]:
        assert steps(*pair).source == pair[1]
    assert calls == [("a", "b"), ("a", "c"), ("a", "d"), ("a", "b")]
