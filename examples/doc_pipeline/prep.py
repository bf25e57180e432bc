"""Featurize every page of every bundle: flor as a feature store.

Logs, per (document, page): where the text came from, the page text, headings, page
numbers, the feature vector and a heuristic `first_page` label; per document: its split.
Declares the document folders with flor.input, so lineage knows which documents it read.
"""

from pathlib import Path

from features import analyze_text, read_pages, rule_label

import flor

DATA = Path(__file__).resolve().parent / "data"
if not (DATA / "pool").is_dir():
    raise SystemExit("no documents in data/: run `make data` (python data.py) first")
# The folders read, by content digest: `flor lineage data/pool` shows what came of them.
pool, gold = flor.input(DATA / "pool"), flor.input(DATA / "gold")
bundles = sorted(pool.glob("*.txt")) + sorted(gold.glob("*.txt"))

for name in flor.loop("document", [p.stem for p in bundles]):
    split = name.split("-")[0]
    flor.log("split", split)
    pages = read_pages(str(DATA / split / f"{name}.txt"))
    for page in flor.loop("page", range(len(pages))):
        text = pages[page]
        flor.log("text_src", "txt")
        flor.log("page_text", text)
        analysis = analyze_text(text)
        flor.log("headings", analysis["headings"])
        flor.log("page_numbers", analysis["page_numbers"])
        flor.log("features", analysis["features"])
        flor.log("first_page", rule_label(analysis))
print(f"featurized {len(bundles)} bundles")
