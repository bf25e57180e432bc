"""Shared fixtures for the propagation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE = Path("/work/shared/bench/propagation/cases")


@pytest.fixture
def suite_dir() -> Path:
    if not SUITE.is_dir():
        pytest.skip("the public propagation suite is not available on this machine")
    return SUITE
