"""Generate the example's documents: bundles of scanned-looking legal papers, as text.

Each bundle is one text file whose pages are separated by form feeds, like a PDF that
was split into pages and OCR'd. A bundle concatenates several documents (complaints,
motions, letters, exhibits); the task of the pipeline is to find the pages that start a
new document (`first_page`), which is what the paper's PDF parser colours.

Bundles under `data/pool/` are the documents the pipeline processes and people review in
the app; bundles under `data/gold/` are a held-out set whose labels an expert checked
(`data/gold.json`). `data/truth.json` holds the true labels of the pool too: only the
end-to-end test reads it, to play the expert who corrects labels in the app.

Run: python data.py [--pool 16] [--gold 8] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
MONTHS = "January February March April May June July August September October November"
MONTHS = MONTHS.split()
NAMES = "LYONS MARTIN GARCIA NGUYEN OKAFOR PATEL RIVERA SMITH TANAKA WASHINGTON".split()  # noqa: SIM905
WORDS = (  # noqa: SIM905
    "the defendant officer plaintiff court alleges that on or about said date arrest "
    "evidence report incident county state motion relief granted pursuant to section "
    "witness statement record hearing counsel respectfully requests order jury trial"
).split()


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def paragraph(rng: random.Random) -> str:
    return ". ".join(sentence(rng, rng.randint(6, 14)) for _ in range(rng.randint(3, 6))) + "."


def case_caption(rng: random.Random) -> str:
    return f"Case No. {rng.randint(18, 24)}-{rng.randint(10000, 99999)}"


def document(rng: random.Random, kind: str) -> list[str]:
    """The pages of one document of `kind`."""
    pages = rng.randint(1, 3)
    numbered = kind in ("complaint", "motion")
    out = []
    for page in range(pages):
        lines: list[str] = []
        if page == 0 and kind == "complaint":
            lines += [case_caption(rng), f"{rng.choice(NAMES)} v. {rng.choice(NAMES)}"]
            lines += ["COMPLAINT AND PRAYER FOR JURY TRIAL"]
        elif page == 0 and kind == "motion":
            lines += [case_caption(rng), "MOTION TO SUPPRESS EVIDENCE"]
        elif page == 0 and kind == "letter":
            lines += [f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, 20{rng.randint(18, 24)}"]
            lines += [f"Dear Counsel {rng.choice(NAMES).title()},"]
        elif page == 0 and kind == "exhibit":
            lines += [f"EXHIBIT {rng.choice('ABCDEFG')}"]
        elif kind == "complaint" and rng.random() < 0.6:
            lines += [f"COUNT {rng.choice(['TWO', 'THREE', 'FOUR'])} FALSE ARREST"]
        if page > 0 or kind == "exhibit":
            lines.append(sentence(rng, 5).lower())  # continuation: starts mid-sentence
        lines += [paragraph(rng) for _ in range(rng.randint(1, 3))]
        if kind == "letter" and page == pages - 1:
            lines.append("Sincerely,")
        if numbered:
            lines.append(f"- {page + 1} -")
        out.append("\n".join(lines))
    return out


def bundle(rng: random.Random) -> tuple[list[str], list[int]]:
    pages: list[str] = []
    first: list[int] = []
    for _ in range(rng.randint(2, 4)):
        kind = rng.choices(["complaint", "motion", "letter", "exhibit"], [3, 2, 4, 1])[0]
        doc = document(rng, kind)
        pages += doc
        first += [1] + [0] * (len(doc) - 1)
    return pages, first


def generate(pool: int, gold: int, seed: int, folder: Path = DATA) -> None:
    rng = random.Random(seed)
    truth: dict[str, list[int]] = {}
    for split, count in (("pool", pool), ("gold", gold)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            name = f"{split}-{i:02d}"
            pages, first = bundle(rng)
            (folder / split / f"{name}.txt").write_text("\f".join(pages))
            truth[name] = first
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    gold_labels = {k: v for k, v in truth.items() if k.startswith("gold-")}
    (folder / "gold.json").write_text(json.dumps(gold_labels, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate the example's document bundles.")
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--gold", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    generate(options.pool, options.gold, options.seed)
    print(f"wrote {options.pool} pool and {options.gold} gold bundles to {DATA}")


if __name__ == "__main__":
    main()
