"""The pages in a real browser: Debian's chromium driven by Playwright, against `flor ui`
serving a store recorded by real runs. Every wait is on a selector or event, never a sleep.

Set FLOR_UI_SCREENSHOTS=<folder> to also write the screenshots used in the docs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from conftest import CLIP, Recorded, Served, record_project, start_server, stop_server
from playwright import sync_api
from store import pgfixtures

pg_server, pg_url = pgfixtures.pg_server, pgfixtures.pg_url

CHROMIUM = os.environ.get("FLOR_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("FLOR_UI_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"no chromium at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


class Page:
    """A browser tab that records console errors and waits for flor's pages to settle."""

    def __init__(self, browser: object, served: Served) -> None:
        self.served = served
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed {r.url}"))
        self.page.route("**/*", self._offline)

    def _offline(self, route: object) -> None:
        """The UI works without a network: a request anywhere but the server fails the test."""
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(self.served.url.split("?")[0]):
            route.continue_()  # type: ignore[attr-defined]
        else:
            self.errors.append(f"the page fetched {url}")
            route.abort()  # type: ignore[attr-defined]

    def open(self, hash_path: str, page: str) -> object:
        self.page.goto(self.served.url.split("?")[0] + hash_path)
        return self.settled(page)

    def settled(self, page: str) -> object:
        self.page.wait_for_selector(f'main[data-page="{page}"][data-ready="1"]')
        return self.page

    def expected(self, text: str) -> None:
        """The console error the browser logs for a refused request the test made on purpose."""
        assert any(text in e for e in self.errors), self.errors
        self.errors = [e for e in self.errors if text not in e]

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


@pytest.fixture
def tab(browser: object, server: Served) -> Iterator[Page]:
    opened = Page(browser, server)
    yield opened
    assert opened.errors == []
    opened.page.close()


def run_ids_shown(page: object) -> list[str]:
    return page.eval_on_selector_all(
        "#runs tbody tr[data-run]", "rows => rows.map(r => r.dataset.run)"
    )  # type: ignore[attr-defined]


def test_every_page_loads_without_console_errors(tab: Page, recorded: Recorded) -> None:
    visit_every_page(tab, recorded)


def visit_every_page(tab: Page, recorded: Recorded) -> None:
    for hash_path, page, selector in [
        ("#/runs", "runs", "#runs tbody tr[data-run]"),
        (f"#/run/{recorded.runs[0]}", "run", "#curves svg path.series"),
        (f"#/compare/{recorded.runs[0]},{recorded.runs[2]}", "compare", "#args-diff"),
        ("#/versions", "versions", ".version"),
        ("#/params", "params", "#scatter circle.point"),
        ("#/hindsight", "hindsight", "#plan"),
        ("#/sql", "sql", "#sql"),
        ("#/lineage", "lineage", "#lineage-target"),
    ]:
        shown = tab.open(hash_path, page)
        assert shown.locator(selector).count() > 0, hash_path  # type: ignore[attr-defined]
        assert shown.locator(".error").count() == 0, hash_path  # type: ignore[attr-defined]


def test_every_page_loads_over_a_postgresql_store(
    browser: object, tmp_path: Path, pg_url: str
) -> None:
    project = record_project(tmp_path / "proj", {"FLOR_STORE": pg_url})
    served = start_server(project.root, store_env={"FLOR_STORE": pg_url})
    tab = Page(browser, served)
    try:
        visit_every_page(tab, project)
        page = tab.open("#/runs", "runs")
        page.fill("#where", "err > 0 and lr < 0.1")  # type: ignore[attr-defined]
        page.press("#where", "Enter")  # type: ignore[attr-defined]
        page.wait_for_selector("text=1–2 of 2 runs")  # type: ignore[attr-defined]
        assert tab.errors == []
    finally:
        tab.page.close()
        stop_server(served)


def test_runs_sort_filter_and_pick_columns(tab: Page, recorded: Recorded) -> None:
    page = tab.open("#/runs", "runs")
    assert sorted(run_ids_shown(page)) == sorted(recorded.runs)
    tab.shot("runs")
    page.click('th[data-column="args.lr"]')  # type: ignore[attr-defined]
    tab.settled("runs")
    page.wait_for_selector('th.sorted-asc[data-column="args.lr"]')  # type: ignore[attr-defined]
    assert run_ids_shown(page) == [recorded.runs[1], recorded.runs[0], recorded.runs[2]]
    page.click('th[data-column="args.lr"]')  # type: ignore[attr-defined]
    page.wait_for_selector('th.sorted-desc[data-column="args.lr"]')  # type: ignore[attr-defined]
    tab.settled("runs")
    assert run_ids_shown(page) == [recorded.runs[2], recorded.runs[0], recorded.runs[1]]
    page.fill("#where", "lr < 0.06 and seed == 3")  # type: ignore[attr-defined]
    page.press("#where", "Enter")  # type: ignore[attr-defined]
    page.wait_for_selector("text=1–1 of 1 runs")  # type: ignore[attr-defined]
    assert run_ids_shown(page) == [recorded.runs[1]]
    page.fill("#where", "lr <")  # type: ignore[attr-defined]
    page.press("#where", "Enter")  # type: ignore[attr-defined]
    assert "does not parse" in page.text_content(".error")  # type: ignore[attr-defined]
    tab.expected("status of 400")
    page.fill("#where", "")  # type: ignore[attr-defined]
    page.press("#where", "Enter")  # type: ignore[attr-defined]
    page.wait_for_selector("text=1–3 of 3 runs")  # type: ignore[attr-defined]
    assert page.locator('th[data-column="values.loss"]').count() == 1  # type: ignore[attr-defined]
    page.click("#columns")  # type: ignore[attr-defined]
    page.uncheck('input[data-column="values.loss"]')  # type: ignore[attr-defined]
    page.wait_for_selector('th[data-column="values.err"]')  # type: ignore[attr-defined]
    tab.settled("runs")
    assert page.locator('th[data-column="values.loss"]').count() == 0  # type: ignore[attr-defined]


def test_compare_from_the_runs_page_shows_the_code_diff(tab: Page, recorded: Recorded) -> None:
    page = tab.open("#/runs", "runs")
    for run_id in (recorded.runs[0], recorded.runs[2]):
        page.check(f'input[aria-label="select {run_id}"]')  # type: ignore[attr-defined]
    page.click("#compare")  # type: ignore[attr-defined]
    tab.settled("compare")
    page.wait_for_selector('#curves[data-ready="1"]')  # type: ignore[attr-defined]
    added = page.locator("pre.diff .add").all_text_contents()  # type: ignore[attr-defined]
    assert "+" + CLIP.rstrip("\n") in added
    assert page.locator("#args-diff tr.differs td:first-child").all_text_contents() == ["lr ≠"]  # type: ignore[attr-defined]
    assert page.locator('#curves [data-chart="loss"] path.series').count() == 2  # type: ignore[attr-defined]
    tab.shot("compare")


def test_run_page_shows_curves_code_and_checkpoints(tab: Page, recorded: Recorded) -> None:
    page = tab.open(f"#/run/{recorded.runs[2]}", "run")
    page.wait_for_selector('#curves[data-ready="1"]')  # type: ignore[attr-defined]
    assert set(
        page.eval_on_selector_all("#curves [data-chart]", "c => c.map(e => e.dataset.chart)")
    ) == {"loss", "err"}  # type: ignore[attr-defined]
    page.wait_for_selector("#code .kw")  # type: ignore[attr-defined]
    assert CLIP.strip() in page.text_content("#code")  # type: ignore[attr-defined]
    assert "weights" in page.text_content("main")  # type: ignore[attr-defined]
    page.click('[data-chart="loss"] button:text("epoch")')  # type: ignore[attr-defined]
    page.wait_for_selector('[data-chart="loss"] text:text("epoch")')  # type: ignore[attr-defined]
    tab.shot("run")


def test_sql_console_runs_queries_and_refuses_writes(tab: Page) -> None:
    page = tab.open("#/sql", "sql")
    page.fill("#sql", "SELECT run_id, status FROM runs ORDER BY started")  # type: ignore[attr-defined]
    page.click("#run-sql")  # type: ignore[attr-defined]
    page.wait_for_selector("#sql-table tbody tr")  # type: ignore[attr-defined]
    assert page.locator("#sql-table tbody tr").count() == 3  # type: ignore[attr-defined]
    assert "/api/sql.csv?" in page.get_attribute("#csv", "href")  # type: ignore[attr-defined]
    tab.shot("sql")
    page.fill("#sql", "DELETE FROM runs")  # type: ignore[attr-defined]
    page.click("#run-sql")  # type: ignore[attr-defined]
    page.wait_for_selector("#sql-result .error")  # type: ignore[attr-defined]
    assert "only reads" in page.text_content("#sql-result .error")  # type: ignore[attr-defined]
    tab.expected("status of 400")


def test_versions_and_parameters_pages(tab: Page, recorded: Recorded) -> None:
    page = tab.open("#/versions", "versions")
    assert page.locator(".version").count() == 2  # type: ignore[attr-defined]
    assert "+1 −0 lines" in page.text_content(".version:nth-child(2)")  # type: ignore[attr-defined]
    tab.shot("versions")
    page = tab.open("#/params", "params")
    assert page.locator("#scatter circle.point").count() == 3  # type: ignore[attr-defined]
    page.select_option("#metric", "loss")  # type: ignore[attr-defined]
    page.wait_for_selector('#scatter .title:text("loss by lr")')  # type: ignore[attr-defined]
    tab.shot("params")


def test_hindsight_replay_from_the_page_fills_the_new_column(
    browser: object, tmp_path: Path
) -> None:
    project = record_project(tmp_path / "proj")
    served = start_server(project.root, "--allow-replay")
    tab = Page(browser, served)
    try:
        page = tab.open("#/hindsight", "hindsight")
        assert "wnorm" in page.text_content("#hindsight-names")  # type: ignore[attr-defined]
        assert page.locator("#propagation tbody tr").count() == 2  # type: ignore[attr-defined]
        tab.shot("hindsight")
        page.click("#replay")  # type: ignore[attr-defined]
        page.wait_for_selector('#replay-status[data-state="done"]', timeout=240_000)  # type: ignore[attr-defined]
        page.wait_for_selector('#replayed-curves[data-ready="1"]')  # type: ignore[attr-defined]
        assert page.locator('#replayed-curves [data-chart="wnorm"] path.series').count() == 3  # type: ignore[attr-defined]
        tab.shot("hindsight-replayed")
        page = tab.open("#/runs", "runs")
        assert page.locator('th[data-column="values.wnorm"]').count() == 1  # type: ignore[attr-defined]
        cells = page.eval_on_selector_all(  # type: ignore[attr-defined]
            "#runs tbody tr[data-run]",
            "rows => rows.map(r => r.children[r.children.length - 1].textContent)",
        )
        assert len(cells) == 3 and all(float(c) > 0 for c in cells)
        assert tab.errors == []
    finally:
        tab.page.close()
        stop_server(served)


def test_an_empty_store_shows_how_to_record(browser: object, tmp_path: Path) -> None:
    import subprocess

    root = tmp_path / "empty"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    served = start_server(root)
    tab = Page(browser, served)
    try:
        page = tab.open("#/runs", "runs")
        assert "No runs yet" in page.text_content("main")  # type: ignore[attr-defined]
        assert "flor.log" in page.text_content("main")  # type: ignore[attr-defined]
        assert tab.errors == []
    finally:
        tab.page.close()
        stop_server(served)


def test_runs_of_several_projects_are_grouped_and_can_be_picked(
    browser: object, tmp_path: Path
) -> None:
    project = record_project(tmp_path / "proj")
    project.store_env = {"FLOR_PROJID": "other"}
    project.run_script("--kwargs", "lr=0.3")
    served = start_server(project.root)
    tab = Page(browser, served)
    try:
        page = tab.open("#/runs", "runs")
        groups = page.locator("#runs tr.group").all_text_contents()  # type: ignore[attr-defined]
        assert groups == ["project other", "project proj"]
        assert len(run_ids_shown(page)) == 4
        page.select_option("#project", "proj")  # type: ignore[attr-defined]
        page.wait_for_selector("text=1–3 of 3 runs")  # type: ignore[attr-defined]
        tab.settled("runs")
        assert sorted(run_ids_shown(page)) == sorted(project.runs)
        assert page.locator("#runs tr.group").count() == 0  # type: ignore[attr-defined]
        assert tab.errors == []
    finally:
        tab.page.close()
        stop_server(served)


def test_lineage_graph_from_the_target_box_and_the_run_page(
    browser: object, pipeline_server: Served, pipeline: Recorded
) -> None:
    _, _, prep2, train2 = pipeline.runs
    clean2 = blake3.blake3(b"A,B\nC,D\n").hexdigest()
    tab = Page(browser, pipeline_server)
    try:
        page = tab.open("#/lineage", "lineage")
        page.fill("#lineage-target", "data/clean.csv@latest")  # type: ignore[attr-defined]
        page.click("#lineage-show")  # type: ignore[attr-defined]
        page.wait_for_selector("#lineage-graph g.node")  # type: ignore[attr-defined]
        tab.settled("lineage")
        layers = page.eval_on_selector_all(  # type: ignore[attr-defined]
            "#lineage-graph g.node", "gs => gs.map(g => [g.dataset.id, +g.dataset.layer])"
        )
        assert sorted(layer for _, layer in layers) == [-2, -1, 0, 1, 2, 2, 2]
        assert page.locator(f'g.node.root[data-id="artifact:{clean2}"]').count() == 1  # type: ignore[attr-defined]
        assert page.locator("#lineage-graph path.edge").count() == 6  # type: ignore[attr-defined]
        assert page.locator("#lineage-graph path.edge.replaced").count() == 2  # type: ignore[attr-defined]
        tab.shot("lineage")

        page.click(f'g.node[data-id="artifact:{clean2}"]')  # type: ignore[attr-defined]
        detail = page.text_content("#artifact-detail")  # type: ignore[attr-defined]
        assert "data/clean.csv" in detail and clean2 in detail and "(8 bytes)" in detail

        page.click(f'g.node[data-id="run:{prep2}"]')  # type: ignore[attr-defined]
        tab.settled("run")
        assert prep2 in page.text_content("h1")  # type: ignore[attr-defined]
        page.click("#lineage-link")  # type: ignore[attr-defined]
        page.wait_for_selector(f'g.node.root[data-id="run:{prep2}"]')  # type: ignore[attr-defined]
        tab.settled("lineage")
        assert page.input_value("#lineage-target") == prep2  # type: ignore[attr-defined]
        assert page.locator(f'g.node[data-id="run:{train2}"]').count() == 1  # type: ignore[attr-defined]

        page.fill("#lineage-target", "nothing/here.csv")  # type: ignore[attr-defined]
        page.press("#lineage-target", "Enter")  # type: ignore[attr-defined]
        page.wait_for_selector("main .error")  # type: ignore[attr-defined]
        assert "no artifact recorded at 'nothing/here.csv'" in page.text_content("main .error")  # type: ignore[attr-defined]
        tab.expected("status of 400")
        assert tab.errors == []
    finally:
        tab.page.close()


OUTSIDE = """\
import flor

for epoch in flor.loop("epoch", range(3)):
    flor.log("acc", 0.5 + epoch / 10)
"""


def test_a_run_recorded_outside_git_says_it_has_no_code(browser: object, tmp_path: Path) -> None:
    """Its run page shows its curves and says why there is no code, without a failed request."""
    import subprocess
    import sys

    from conftest import clean_env

    root = tmp_path / "nogit"
    root.mkdir()
    (root / "train.py").write_text(OUTSIDE)
    store = {"FLOR_HOME": str(root / ".flor")}  # the CLI needs it named outside git
    env = {**clean_env(), **store}
    subprocess.run([sys.executable, "train.py"], cwd=root, env=env, check=True, timeout=120)
    served = start_server(root, store_env=store)
    tab = Page(browser, served)
    try:
        page = tab.open("#/runs", "runs")
        (run_id,) = run_ids_shown(page)
        page = tab.open(f"#/run/{run_id}", "run")
        page.wait_for_selector('#curves[data-ready="1"] path.series')  # type: ignore[attr-defined]
        assert "outside a git repository" in page.text_content("#no-code")  # type: ignore[attr-defined]
        assert page.locator(".error").count() == 0  # type: ignore[attr-defined]
        assert tab.errors == []
    finally:
        tab.page.close()
        stop_server(served)
