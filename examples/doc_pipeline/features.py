"""Text featurization shared by the pipeline's scripts (no torch, no pandas)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

FEATURES = [
    "caption",  # "Case No. ..." near the top
    "caps_title",  # an all-caps title line near the top (not a COUNT heading)
    "count_heading",  # a COUNT heading: inside a complaint
    "date_line",  # a date as the first line
    "salutation",  # "Dear ...": a letter starts
    "page_one",  # a "- 1 -" page number
    "page_number",  # any page number
    "continuation",  # starts in the middle of a sentence
    "length",  # thousands of characters
]
DATE = re.compile(r"^[A-Z][a-z]+ \d{1,2}, \d{4}$")
PAGE_NUMBER = re.compile(r"^- (\d+) -$")


def read_pages(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.read().split("\f")


def analyze_text(text: str) -> dict[str, Any]:
    """Headings, page numbers and the feature vector of one page."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    top = lines[:3]
    headings = [line for line in lines if line.isupper() and len(line) > 8]
    numbers = [int(m.group(1)) for line in lines if (m := PAGE_NUMBER.match(line))]
    vector = [
        any(line.startswith("Case No.") for line in top),
        any(line.isupper() and not line.startswith("COUNT") for line in top),
        any(line.startswith("COUNT") for line in headings),
        bool(top) and bool(DATE.match(top[0])),
        any(line.startswith("Dear ") for line in top),
        1 in numbers,
        bool(numbers),
        bool(lines) and lines[0][0].islower(),
        len(text) / 1000,
    ]
    return {
        "headings": headings,
        "page_numbers": numbers,
        "features": [float(v) for v in vector],
    }


def rule_label(analysis: dict[str, Any]) -> int:
    """The quick heuristic the project started with: a title or a page "1" starts a document.

    It misses letters, which have neither: the model trained on these labels inherits the
    blind spot until people correct the labels in the app.
    """
    caps_title, page_one = analysis["features"][1], analysis["features"][5]
    return int(bool(caps_title or page_one))


def from_script(frame: Any, script: str) -> Any:
    """Rows logged by `script` (the `filename` column is the path from the repository root)."""
    return frame[frame["filename"].map(lambda f: PurePosixPath(str(f)).name == script)]
