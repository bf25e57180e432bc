"""The UI's library pieces on their own: highlighting, downsampling, paths, sorting."""

from __future__ import annotations

import numpy as np
import pytest

from flor.errors import UsageError
from flor.store.browse import _downsample, _extremes
from flor.ui.api import _snapshot_path, _sort_key, clean
from flor.ui.highlight import python_html


def test_highlighting_escapes_everything_and_keeps_lines() -> None:
    source = 'import flor\n# <b>x</b>\ndef f(a="<script>"):\n    return a + 1  # done\n'
    lines = python_html(source)
    assert len(lines) == 4
    assert lines[0] == '<span class="kw">import</span> flor'
    assert lines[1] == '<span class="com"># &lt;b&gt;x&lt;/b&gt;</span>'
    assert '<span class="fn">f</span>' in lines[2]
    assert '<span class="str">&quot;&lt;script&gt;&quot;</span>' in lines[2]
    assert '<span class="num">1</span>' in lines[3]
    assert "<script>" not in "".join(lines)


def test_highlighting_a_file_that_does_not_tokenize_is_plain_escaped_text() -> None:
    assert python_html('x = """never closed <\n') == ["x = &quot;&quot;&quot;never closed &lt;"]


def test_multiline_strings_are_highlighted_on_each_line() -> None:
    lines = python_html('s = """a\nb"""\n')
    assert lines == [
        's = <span class="str">&quot;&quot;&quot;a</span>',
        '<span class="str">b&quot;&quot;&quot;</span>',
    ]


def test_downsampling_keeps_each_buckets_extremes_in_order() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=100_000)
    y[54_321] = 50.0  # a spike survives
    picked = _downsample(y, 1000)
    assert len(picked) == 1000 and (np.diff(picked) >= 0).all()
    assert 54_321 in picked and y[picked].min() == y.min()
    edges = np.linspace(0, len(y), 501).astype(int)
    for bucket in (0, 250, 499):
        part = y[edges[bucket] : edges[bucket + 1]]
        kept = y[picked[2 * bucket : 2 * bucket + 2]]
        assert sorted(kept) == sorted([part.min(), part.max()])
    assert _downsample(y[:1000], 1000) is None


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x.py", "a/../../b", "a\\..\\b"])
def test_snapshot_paths_cannot_leave_the_snapshot(bad: str) -> None:
    with pytest.raises(UsageError):
        _snapshot_path(bad)
    assert _snapshot_path("src/train.py") == "src/train.py"


def test_sorting_mixed_values_never_compares_types() -> None:
    values = [3, "b", None, 1.5, float("nan"), "a", True]
    ordered = sorted(values, key=_sort_key)
    # numbers, then everything else as text (a boolean is not a number here), then missing
    assert ordered[:5] == [1.5, 3, True, "a", "b"]
    assert ordered[5] is None and ordered[6] != ordered[6]


def test_non_finite_numbers_travel_as_null() -> None:
    assert clean({"a": [float("nan"), float("inf"), 1.0], "b": {"c": float("-inf")}}) == {
        "a": [None, None, 1.0],
        "b": {"c": None},
    }


def test_downsampling_a_stored_summary_picks_what_numpy_picks() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=8_000).round(2)  # ties: the first of equal extremes is kept
    for points in (10, 1200, 7_998):
        expected = _downsample(y, points)
        assert expected is not None
        assert _extremes(y.tolist(), points // 2) == expected.tolist()
