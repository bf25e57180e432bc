"""The JSON API through a real `flor ui` process, over a store recorded by real runs."""

from __future__ import annotations

import csv
import http.client
import io
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import blake3
import pandas as pd
import pytest
from conftest import (
    CLIP,
    HINDSIGHT,
    Recorded,
    Served,
    clean_env,
    record_project,
    start_server,
    stop_server,
)
from store import pgfixtures

import flor


def dataframe(root: Path, monkeypatch: pytest.MonkeyPatch, *names: str) -> pd.DataFrame:
    monkeypatch.chdir(root)
    return flor.dataframe(*names)


def test_info_names_the_store_and_its_runs(server: Served, recorded: Recorded) -> None:
    info = server.get("/api/info")
    assert info["runs"] == 3 and not info["empty"]
    assert info["store"] == str(recorded.root / ".flor" / "flor.db")
    assert info["scripts"] == ["train.py"] and info["allow_replay"] is False


def test_runs_sort_on_the_server_by_any_column(server: Served, monkeypatch) -> None:
    page = server.get("/api/runs?sort=values.err&desc=0")
    errs = [row["values"]["err"] for row in page["rows"]]
    assert errs == sorted(errs) and len(errs) == 3
    assert {"args.lr", "args.seed", "values.err", "values.loss"} <= set(page["columns"])
    down = server.get("/api/runs?sort=args.lr&desc=1")
    assert [row["args"]["lr"] for row in down["rows"]] == [0.1, 0.05, 0.02]


def test_runs_last_values_are_the_runs_final_values(
    server: Served, recorded: Recorded, monkeypatch
) -> None:
    frame = dataframe(recorded.root, monkeypatch, "err")
    page = server.get("/api/runs?limit=10")
    for row in page["rows"]:
        mine = frame[frame["runid"] == row["run_id"]].sort_values("epoch")
        assert row["values"]["err"] == mine["err"].iloc[-1]


def test_runs_filter_with_the_where_syntax_of_the_cli(server: Served, recorded: Recorded) -> None:
    page = server.get("/api/runs?where=" + quote("lr > 0.03 and seed == 0"))
    assert page["total"] == 2
    assert {row["run_id"] for row in page["rows"]} == {recorded.runs[0], recorded.runs[2]}
    status, body, _ = server.request("/api/runs?where=" + quote("lr >"))
    assert status == 400 and "does not parse" in body["error"]
    status, body, _ = server.request("/api/runs?where=" + quote("__import__('os')"))
    assert status == 400 and "--where" in body["error"]


def test_runs_paginate(server: Served) -> None:
    first = server.get("/api/runs?limit=2&offset=0&sort=started&desc=0")
    second = server.get("/api/runs?limit=2&offset=2&sort=started&desc=0")
    assert first["total"] == second["total"] == 3
    assert len(first["rows"]) == 2 and len(second["rows"]) == 1
    assert {r["run_id"] for r in first["rows"]}.isdisjoint(r["run_id"] for r in second["rows"])
    status, body, _ = server.request("/api/runs?limit=0")
    assert status == 400
    status, body, _ = server.request("/api/runs?sort=nope")
    assert status == 400 and "cannot sort" in body["error"]


def test_run_detail(server: Served, recorded: Recorded, monkeypatch) -> None:
    run_id = recorded.runs[2]
    detail = server.get(f"/api/runs/{run_id[:6]}")  # a unique prefix works
    assert detail["run"]["run_id"] == run_id and detail["run"]["args"] == {"lr": 0.1, "seed": 0}
    names = {n["name"]: n for n in detail["names"]}
    assert names["loss"]["loops"] == ["epoch", "step"] and names["loss"]["count"] == 60
    assert names["err"]["loops"] == ["epoch"] and names["lr"]["loops"] == []
    frame = dataframe(recorded.root, monkeypatch, "err")
    assert (
        names["err"]["final"]
        == frame[frame["runid"] == run_id].sort_values("epoch")["err"].iloc[-1]
    )
    assert detail["checkpoints"] and {c["object"] for c in detail["checkpoints"]} >= {"weights"}
    assert "train.py" in detail["git"]["files"] and detail["git"]["branch"] == "main"
    assert detail["git"]["base_message"] == "v2: clip gradients"
    assert detail["replays"] == []
    status, body, _ = server.request("/api/runs/nosuchrun")
    assert status == 404 and "no run" in body["error"]


def test_series_follow_loop_order_on_both_axes(
    server: Served, recorded: Recorded, monkeypatch
) -> None:
    run_id = recorded.runs[0]
    found = server.get(f"/api/runs/{run_id}/series?name=loss")
    frame = dataframe(recorded.root, monkeypatch, "loss")
    expected = frame[frame["runid"] == run_id].sort_values(["epoch", "step"])["loss"].tolist()
    assert found["y"] == expected and found["total"] == 60 and not found["downsampled"]
    assert found["x"]["step"] == list(range(60))
    assert found["x"]["epoch"][:2] == [0.0, 0.1] and found["x"]["epoch"][-1] == 5.9


def test_series_downsample_keeps_extremes(server: Served, recorded: Recorded) -> None:
    run_id = recorded.runs[0]
    full = server.get(f"/api/runs/{run_id}/series?name=loss")
    small = server.get(f"/api/runs/{run_id}/series?name=loss&points=10")
    assert len(small["y"]) == 10 and "min/max" in small["downsampled"]
    assert max(small["y"]) == max(full["y"]) and min(small["y"]) == min(full["y"])
    assert small["x"]["step"] == sorted(small["x"]["step"])


def test_snapshot_file_is_highlighted_and_cannot_escape(server: Served, recorded: Recorded) -> None:
    run_id = recorded.runs[2]
    found = server.get(f"/api/runs/{run_id}/file")
    assert found["path"] == "train.py" and CLIP in found["text"]
    assert any('<span class="kw">import</span>' in line for line in found["html"])
    assert all("<script" not in line for line in found["html"])
    for bad in ("../../etc/passwd", "/etc/passwd", "a/../../x"):
        status, body, _ = server.request(f"/api/runs/{run_id}/file?path=" + quote(bad))
        assert status == 400 and "inside the snapshot" in body["error"], bad
    status, body, _ = server.request(f"/api/runs/{run_id}/file?path=missing.py")
    assert status == 404


def test_compare_shows_args_and_the_code_diff(server: Served, recorded: Recorded) -> None:
    first, second, third = recorded.runs
    found = server.get(f"/api/compare?runs={first},{third}")
    args = {a["name"]: a for a in found["args"]}
    assert args["lr"]["values"] == [0.05, 0.1] and args["lr"]["differs"]
    assert not args["seed"]["differs"]
    diff = found["diffs"][0]["diff"]
    assert "+" + CLIP.rstrip("\n") in diff.splitlines()
    same = server.get(f"/api/compare?runs={first},{second}")
    assert same["diffs"][0]["diff"] == "" and same["diffs"][0]["same"]
    # named newest first (as ticked from the top of the runs page): still oldest first,
    # the diff read forward in time
    backward = server.get(f"/api/compare?runs={third},{first}")
    assert [r["run_id"] for r in backward["runs"]] == [first, third]
    assert backward["diffs"][0]["diff"] == diff
    assert {n["name"] for n in found["names"]} >= {"loss", "err", "lr"}
    status, body, _ = server.request(f"/api/compare?runs={first}")
    assert status == 400


def test_sql_is_read_only_and_downloads_csv(server: Served) -> None:
    found = server.get("/api/sql?q=" + quote("SELECT run_id, args FROM runs ORDER BY started"))
    assert found["columns"] == ["run_id", "args"] and found["total"] == 3
    for statement in ("DELETE FROM runs", "DROP TABLE logs", "UPDATE runs SET status = 'x'"):
        status, body, _ = server.request("/api/sql?q=" + quote(statement))
        assert status == 400 and "only reads" in body["error"], statement
    assert server.get("/api/info")["runs"] == 3
    mixed = server.get("/api/sql?q=" + quote("SELECT 7 AS n UNION ALL SELECT NULL"))
    assert mixed["rows"] == [[7], [None]] and type(mixed["rows"][0][0]) is int  # not 7.0
    status, raw, headers = server.request(
        "/api/sql.csv?q="
        + quote("SELECT name, COUNT(*) AS n FROM logs GROUP BY name ORDER BY name")
    )
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert {r["name"]: int(r["n"]) for r in rows}["loss"] == 180


def test_versions_group_runs_of_unchanged_code(server: Served, recorded: Recorded) -> None:
    found = server.get("/api/versions")
    (script,) = found["scripts"]
    assert script["filename"] == "train.py"
    first, second = script["versions"]
    assert [r["run_id"] for r in first["runs"]] == recorded.runs[:2]
    assert [r["run_id"] for r in second["runs"]] == recorded.runs[2:]
    assert second["change"] == {"added": 1, "removed": 0, "first": False}


def test_params_pair_args_with_last_metrics(server: Served, recorded: Recorded) -> None:
    found = server.get("/api/params")
    assert found["params"] == ["lr", "seed"] and found["metrics"] == ["err", "loss"]
    assert found["varying"] == ["lr", "seed"]  # the page's default: the first of these
    assert found["run_ids"] == recorded.runs
    assert found["args"] == {"lr": [0.05, 0.02, 0.1], "seed": [0, 3, 0]}
    runs = server.get("/api/runs?sort=started&desc=0")["rows"]
    assert found["values"]["err"] == [r["values"]["err"] for r in runs]
    first, second, third = (r["version"] for r in runs)  # each run has its own snapshot
    assert len({first, second, third}) == 3
    assert found["versions"] == [first, first, third]  # but the first two ran the same code


def test_versions_list_at_most_a_page_of_runs_each(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library on its own, on the same store: a version of many runs lists the first
    RUNS_PER_VERSION and counts the rest."""
    from flor.ui import api, server

    monkeypatch.chdir(recorded.root)
    monkeypatch.setattr(api, "RUNS_PER_VERSION", 1)
    first, second = api.versions(server.project_here(False))["scripts"][0]["versions"]
    assert [r["run_id"] for r in first["runs"]] == recorded.runs[:1] and first["more"] == 1
    assert second["more"] == 0


def test_hindsight_reports_missing_statements_propagation_and_plan(
    server: Served, recorded: Recorded
) -> None:
    found = server.get("/api/hindsight")
    assert found["script"] == "train.py"
    names = {n["name"]: n["lacking"] for n in found["names"]}
    assert names["wnorm"] == recorded.runs and names["loss"] == []
    first, second, third = recorded.runs  # the first two ran the same code
    assert [v["label"] for v in found["versions"]] == [f"run {first}, run {second}", f"run {third}"]
    for version in found["versions"]:
        assert version["inserted"] == ['flor.log("wnorm", float(np.linalg.norm(w)))']
        assert not version["declined"] and "+" in version["diff"]
    plan = found["plan"]
    assert plan["names"] == ["wnorm"] and not plan["error"]
    assert {r["run_id"] for r in plan["runs"]} == set(recorded.runs)
    assert plan["tasks"] >= 3 and plan["estimate_s"] > 0
    assert {r["strategy"] for r in plan["runs"]} == {"outer"}


def test_replay_is_refused_without_allow_replay(server: Served) -> None:
    status, body, _ = server.request(
        "/api/replay", body={"names": ["wnorm"]}, headers={"X-Flor-Token": server.token}
    )
    assert status == 403 and "--allow-replay" in body["error"]


def test_requests_naming_another_host_are_refused(server: Served) -> None:
    status, body, _ = server.request("/api/info", headers={"Host": "evil.example:80"})
    assert status == 403 and "Host" in body["error"]


def test_unknown_endpoints_and_static_files(server: Served) -> None:
    assert server.request("/api/nope")[0] == 404
    assert server.request("/static/../server.py")[0] == 404
    status, body, headers = server.request("/static/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "script-src 'self'" in headers["Content-Security-Policy"]


@pytest.fixture
def own_project(tmp_path: Path) -> Recorded:
    return record_project(tmp_path / "proj")


def test_replay_from_the_api_fills_the_new_values(own_project: Recorded, monkeypatch) -> None:
    served = start_server(own_project.root, "--allow-replay")
    try:
        denied = served.request(
            "/api/replay", body={"names": ["wnorm"]}, headers={"X-Flor-Token": "x"}
        )
        assert denied[0] == 403
        cross = served.request(
            "/api/replay",
            body={"names": ["wnorm"]},
            headers={"X-Flor-Token": served.token, "Origin": "http://evil.example"},
        )
        assert cross[0] == 403 and "cross-site" in cross[1]["error"]
        status, job, _ = served.request(
            "/api/replay", body={"names": ["wnorm"]}, headers={"X-Flor-Token": served.token}
        )
        assert status == 200, job
        deadline = time.monotonic() + 240  # a guard against hangs, not a timing assertion
        while job["state"] in ("planning", "running") and time.monotonic() < deadline:
            job = served.get(f"/api/replay/{job['job_id']}")
        assert job["state"] == "done", job
        assert job["tasks_ended"] == job["tasks"] and job["values_written"] == 18
        detail = served.get(f"/api/runs/{own_project.runs[0]}")
        assert [n for n in detail["names"] if n["name"] == "wnorm"][0]["replayed"]
        assert detail["replays"] and "wnorm" in detail["replays"][0]["values"]
        curve = served.get(f"/api/runs/{own_project.runs[0]}/series?name=wnorm")
        frame = dataframe(own_project.root, monkeypatch, "wnorm")
        mine = frame[frame["runid"] == own_project.runs[0]].sort_values("epoch")["wnorm"]
        assert curve["replayed"] and curve["y"] == mine.tolist() and len(curve["y"]) == 6
        assert served.get("/api/hindsight")["plan"] is None
    finally:
        stop_server(served)


def test_a_replay_declined_for_every_run_fails_naming_each_run(own_project: Recorded) -> None:
    """As `flor replay` exits 1: values asked for and not given are a failure, not 'done'."""
    newest = own_project.root / "train.py"
    clock = '        flor.log("stamp", time.time())\n'
    source = newest.read_text().replace(HINDSIGHT, clock)
    newest.write_text("import time\n" + source)
    served = start_server(own_project.root, "--allow-replay")
    try:
        status, job, _ = served.request(
            "/api/replay", body={"names": ["stamp"]}, headers={"X-Flor-Token": served.token}
        )
        assert status == 200, job
        deadline = time.monotonic() + 240  # a guard against hangs, not a timing assertion
        while job["state"] in ("planning", "running") and time.monotonic() < deadline:
            job = served.get(f"/api/replay/{job['job_id']}")
        assert job["state"] == "failed", job
        assert sorted(d["run_id"] for d in job["declined"]) == sorted(own_project.runs)
        assert all("stamp" in d["reason"] for d in job["declined"]), job["declined"]
        assert job["values_written"] == 0
    finally:
        stop_server(served)


def test_an_empty_store_says_how_to_record(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    served = start_server(root)
    try:
        info = served.get("/api/info")
        assert info["empty"] and info["runs"] == 0
        assert served.get("/api/runs")["total"] == 0
        assert served.get("/api/versions") == {"scripts": []}
        status, body, _ = served.request("/api/sql?q=SELECT%201")
        assert status == 503 and "record a run first" in body["error"]
    finally:
        stop_server(served)


def test_other_hosts_need_the_token(recorded: Recorded) -> None:
    served = start_server(recorded.root, "--host", "127.0.0.2", "--token", "s3cret-token")
    try:
        assert served.url.endswith("/?token=s3cret-token")
        assert served.request("/api/info")[0] == 401
        assert served.request("/api/info", headers={"X-Flor-Token": "wrong"})[0] == 401
        assert served.request("/api/info", headers={"X-Flor-Token": "s3cret-token"})[0] == 200
        connection = http.client.HTTPConnection(served.host, timeout=60)
        connection.request("GET", "/?token=s3cret-token")
        response = connection.getresponse()
        assert response.status == 303 and response.getheader("Location") == "/"
        cookie = response.getheader("Set-Cookie") or ""
        connection.close()
        assert (
            "flor_token=s3cret-token" in cookie
            and "SameSite=Strict" in cookie
            and "HttpOnly" in cookie
        )
        assert served.request("/api/info", headers={"Cookie": "flor_token=s3cret-token"})[0] == 200
    finally:
        stop_server(served)


def test_a_server_on_every_interface_answers_other_machines_with_the_token(
    recorded: Recorded,
) -> None:
    """`--host 0.0.0.0` is for other machines: they name this one by an address or a name
    the server cannot know, so any Host goes (the token guards every request), the URL
    printed names the machine, and a replay's Origin must match the Host it was sent to."""
    served = start_server(recorded.root, "--host", "0.0.0.0", "--token", "s3cret-token")
    try:
        port = served.host.rsplit(":", 1)[1]
        assert served.host == f"{socket.gethostname()}:{port}"
        for name in ("127.0.0.1", "localhost"):  # as another machine would: by its own name
            there = Served(f"http://{name}:{port}/", "", served.process, served.root)
            assert there.request("/api/info")[0] == 401
            assert there.request("/api/info", headers={"X-Flor-Token": "s3cret-token"})[0] == 200
            cross = there.request(
                "/api/replay",
                body={"names": ["wnorm"]},
                headers={"X-Flor-Token": "s3cret-token", "Origin": "http://evil.example"},
            )
            assert cross[0] == 403 and "cross-site" in cross[1]["error"]
    finally:
        stop_server(served)


def test_a_port_in_use_is_one_line_naming_port(recorded: Recorded) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "flor", "ui", "--port", str(port), "--no-open"],
            cwd=recorded.root,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"Error: port {port} on 127.0.0.1 is in use: choose another with --port"
    )


pg_server, pg_url = pgfixtures.pg_server, pgfixtures.pg_url


def test_a_postgresql_store_serves_the_same_answers(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI reads the store the CLI resolves: FLOR_STORE on a PostgreSQL server."""
    project = record_project(tmp_path / "proj", {"FLOR_STORE": pg_url})
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("FLOR_STORE", pg_url)
    from flor.ui import api
    from flor.ui.server import project_here

    alone = api.runs_page(project_here(allow_replay=False), offset=1, limit=2)  # read alone
    whole = api.runs_page(project_here(allow_replay=False), offset=1, limit=2, complete=True)
    assert alone["complete"] is False and whole["complete"] is True
    assert alone["rows"] == whole["rows"] and alone["columns"] == whole["columns"]
    assert not (project.root / ".flor" / "flor.db").exists()
    served = start_server(project.root, store_env={"FLOR_STORE": pg_url})
    try:
        info = served.get("/api/info")
        password = urlsplit(pg_url).password
        assert info["runs"] == 3 and "***" in info["store"] and password
        assert password not in info["store"]
        page = served.get("/api/runs?sort=args.lr&desc=1")
        assert [row["args"]["lr"] for row in page["rows"]] == [0.1, 0.05, 0.02]
        assert all(isinstance(row["values"]["err"], float) for row in page["rows"])
        detail = served.get(f"/api/runs/{project.runs[0]}")
        names = {n["name"]: n for n in detail["names"]}
        assert names["loss"]["loops"] == ["epoch", "step"] and names["loss"]["count"] == 60
        curve = served.get(f"/api/runs/{project.runs[0]}/series?name=loss")
        assert len(curve["y"]) == 60 and curve["x"]["step"] == list(range(60))
        assert served.get("/api/sql?q=SELECT%20COUNT(*)%20AS%20n%20FROM%20runs")["rows"] == [[3]]
        status, body, _ = served.request("/api/sql?q=" + quote("DELETE FROM runs"))
        assert status == 400
        assert len(served.get("/api/versions")["scripts"][0]["versions"]) == 2
        # every page's reads on PostgreSQL: filters and sorts by value, run detail numbers,
        # params, compare, hindsight and the CSV download
        slow = served.get("/api/runs?where=" + quote("err > 0 and lr < 0.1") + "&sort=values.err")
        assert [row["args"]["lr"] for row in slow["rows"]] in ([0.05, 0.02], [0.02, 0.05])
        errs = [row["values"]["err"] for row in slow["rows"]]
        assert errs == sorted(errs, reverse=True)
        assert isinstance(detail["run"]["checkpoint_bytes"], int)
        assert detail["run"]["checkpoint_bytes"] == page["rows"][1]["checkpoint_bytes"] > 0
        assert served.get("/api/params")["varying"] == ["lr", "seed"]
        first, _, third = project.runs
        compared = served.get(f"/api/compare?runs={third},{first}")
        assert "+" + CLIP.rstrip("\n") in compared["diffs"][0]["diff"].splitlines()
        hindsight = served.get("/api/hindsight")
        assert [n["name"] for n in hindsight["names"] if n["lacking"]] == ["wnorm"]
        assert hindsight["plan"]["tasks"] > 0 and not hindsight["plan"]["error"]
        status, csv, headers = served.request("/api/sql.csv?q=" + quote("SELECT run_id FROM runs"))
        assert status == 200 and "attachment" in headers["Content-Disposition"]
        assert sorted(csv.decode().split()) == sorted(["run_id", *project.runs])
    finally:
        stop_server(served)


LIVE = """\
import os
from pathlib import Path
import flor

go = Path(os.environ["UI_TEST_GO"])
for step in flor.loop("step", range(10**9)):
    flor.log("x", step)
    if go.exists():
        break
print(step + 1)
"""


def test_a_running_training_is_read_without_blocking_it(tmp_path: Path) -> None:
    root = tmp_path / "live"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "live.py").write_text(LIVE)
    go = tmp_path / "go"
    training = subprocess.Popen(
        [sys.executable, "live.py"],
        cwd=root,
        env={**clean_env(), "UI_TEST_GO": str(go)},
        stdout=subprocess.PIPE,
        text=True,
    )
    served = None
    try:
        served = start_server(root)
        seen = 0
        while seen < 1000:  # read while it writes: several flushes' worth of values
            assert training.poll() is None
            status, page, _ = served.request("/api/runs")
            if status == 200 and page["total"]:  # 503 until the run has created the store
                run = page["rows"][0]
                assert run["status"] == "running"
                seen = served.get(f"/api/runs/{run['run_id']}/series?name=x")["total"]
        go.write_text("stop")
        out, _ = training.communicate(timeout=120)
        assert training.returncode == 0
        logged = int(out.split()[-1])
        final = served.get(f"/api/runs/{run['run_id']}/series?name=x&points=20000")
        assert served.get(f"/api/runs/{run['run_id']}")["run"]["status"] == "finished"
        assert final["total"] == logged > seen
    finally:
        go.write_text("stop")
        training.wait(timeout=120)
        if training.stdout:
            training.stdout.close()
        if served is not None:
            stop_server(served)


@pytest.mark.parametrize("length", ["abc", "-5", str(10**9)])
def test_a_bad_content_length_is_refused_with_a_reason(server: Served, length: str) -> None:
    connection = http.client.HTTPConnection(server.host, timeout=60)
    connection.putrequest("POST", "/api/replay")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("X-Flor-Token", server.token)
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and b"under 64 KB" in response.read()
    connection.close()


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("nonexistent.invalid", "cannot resolve --host nonexistent.invalid"),
        ("192.0.2.1", "192.0.2.1 is not an address of this machine: check --host"),
    ],
)
def test_a_host_it_cannot_listen_on_is_one_line(
    recorded: Recorded, host: str, message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flor", "ui", "--host", host, "--port", "0", "--no-open"],
        cwd=recorded.root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: {message}") and done.stderr.count("\n") == 1


def test_open_points_the_browser_at_the_printed_url(recorded: Recorded, tmp_path: Path) -> None:
    """`--open` (the default) hands the URL to the user's browser ($BROWSER here)."""
    opened = tmp_path / "opened"
    fake_browser = tmp_path / "browser.py"
    fake_browser.write_text(  # written aside, then renamed: the test never reads half a URL
        "import os, sys, pathlib\n"
        f"pathlib.Path({str(opened) + '.part'!r}).write_text(sys.argv[1])\n"
        f"os.replace({str(opened) + '.part'!r}, {str(opened)!r})\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "flor", "ui", "--port", "0"],
        cwd=recorded.root,
        env={**clean_env(), "BROWSER": f"{sys.executable} {fake_browser} %s"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline().split(" at ")[-1].strip()
        while not opened.exists():  # the browser is started in a thread
            assert process.poll() is None
        assert opened.read_text() == printed and printed.startswith("http://127.0.0.1:")
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


@pytest.mark.parametrize("token", ["short", "has space", "semi;colon"])
def test_a_token_unfit_for_a_url_is_refused(recorded: Recorded, token: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flor", "ui", "--host", "127.0.0.2", "--token", token, "--no-open"],
        cwd=recorded.root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.startswith("Error: --token needs at least 8")


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def test_lineage_around_a_file_in_layers(pipeline_server: Served, pipeline: Recorded) -> None:
    prep1, train1, prep2, train2 = pipeline.runs
    raw2, clean2 = b3(b"a,b\nc,d\n"), b3(b"A,B\nC,D\n")
    models = [b3(f"{n}:A,B\nC,D\n".encode()) for n in (0, 1, 2)]
    got = pipeline_server.get("/api/lineage?target=" + quote("data/clean.csv@latest"))
    assert got["roots"] == [f"artifact:{clean2}"] and got["direction"] == "both"
    assert {n["id"]: n["layer"] for n in got["nodes"]} == {
        f"artifact:{raw2}": -2,
        f"run:{prep2}": -1,
        f"artifact:{clean2}": 0,
        f"run:{train2}": 1,
        **{f"artifact:{m}": 2 for m in models},
    }
    edges = {(e["source"], e["target"], e["role"], e["status"]) for e in got["edges"]}
    assert edges == {
        (f"artifact:{raw2}", f"run:{prep2}", "input", "ok"),
        (f"run:{prep2}", f"artifact:{clean2}", "output", "ok"),
        (f"artifact:{clean2}", f"run:{train2}", "input", "ok"),
        (f"run:{train2}", f"artifact:{models[0]}", "output", "replaced"),
        (f"run:{train2}", f"artifact:{models[1]}", "output", "replaced"),
        (f"run:{train2}", f"artifact:{models[2]}", "output", "ok"),
    }
    nodes = {n["id"]: n for n in got["nodes"]}
    clean = nodes[f"artifact:{clean2}"]
    assert (clean["paths"], clean["bytes"], clean["type"]) == (["data/clean.csv"], 8, "file")
    assert nodes[f"run:{prep2}"]["filename"] == "prep.py"
    assert prep1 not in str(got) and train1 not in str(got)  # the old data's runs are apart


def test_lineage_of_a_run_with_direction_and_depth(
    pipeline_server: Served, pipeline: Recorded
) -> None:
    prep1, train1, _, _ = pipeline.runs
    old_clean = b3(b"A,B\n")
    down = pipeline_server.get(f"/api/lineage?target={prep1}&direction=downstream&depth=1")
    assert down["depth"] == 1
    assert {n["id"]: n["layer"] for n in down["nodes"]} == {
        f"run:{prep1}": 0,
        f"artifact:{old_clean}": 1,
    }
    further = pipeline_server.get(f"/api/lineage?target={prep1}&direction=downstream&depth=2")
    assert {n["id"]: n["layer"] for n in further["nodes"]}[f"run:{train1}"] == 2
    up = pipeline_server.get(f"/api/lineage?target={train1[:12]}&direction=upstream&depth=all")
    assert sorted(n["layer"] for n in up["nodes"]) == [-3, -2, -1, 0]
    assert [n["id"] for n in up["nodes"] if n["layer"] == -2] == [f"run:{prep1}"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("target=nothing/here.csv", "no artifact recorded at 'nothing/here.csv'"),
        ("target=", "empty lineage target"),
        ("target=model.txt@", "has nothing after @"),
        ("target=model.txt&direction=sideways", "direction 'sideways'"),
        ("target=model.txt&depth=two", "depth must be an integer"),
        ("target=model.txt&depth=-1", "depth -1 is negative"),
    ],
)
def test_lineage_refuses_bad_targets_in_one_line(
    pipeline_server: Served, query: str, message: str
) -> None:
    status, body, _ = pipeline_server.request("/api/lineage?" + query)
    assert status == 400 and message in body["error"] and "\n" not in body["error"]


def test_a_first_runs_page_needs_no_pass_over_all_values(recorded: Recorded, monkeypatch) -> None:
    """Right after start the first page carries its own runs' values, read by index seeks,
    the same as once every run's values are read; a filter or a value sort waits for them."""
    from flor.ui import api
    from flor.ui.server import project_here

    monkeypatch.chdir(recorded.root)
    fresh = project_here(allow_replay=False)
    first = api.runs_page(fresh, limit=2)
    assert first["complete"] is False and fresh.last_values(wait=False) is None
    with fresh.reading() as conn:  # not even every run was read: the page was, alone
        assert fresh.ready_run_summary(conn) is None
    pages = [
        api.runs_page(project_here(allow_replay=False), offset=1, limit=1, descending=False),
        api.runs_page(project_here(allow_replay=False), projid="proj", offset=2),
        api.runs_page(project_here(allow_replay=False), projid="none"),
    ]
    full = api.runs_page(fresh, limit=2, complete=True)
    assert full["complete"] is True
    assert first["rows"] == full["rows"] and first["columns"] == full["columns"]
    assert first["total"] == full["total"] == 3 and first["projects"] == full["projects"]
    for alone, kwargs in zip(
        pages,
        [
            {"offset": 1, "limit": 1, "descending": False},
            {"projid": "proj", "offset": 2},
            {"projid": "none"},
        ],
        strict=True,
    ):
        whole = api.runs_page(fresh, **kwargs)
        assert alone["rows"] == whole["rows"] and alone["total"] == whole["total"]
        if alone["rows"]:  # else its columns are those of no run: the page asks again
            assert alone["columns"] == whole["columns"]
    assert [r["run_id"] for r in first["rows"]] == recorded.runs[::-1][:2]
    assert api.runs_page(project_here(allow_replay=False), sort="values.err")["complete"]


def test_a_snapshot_folder_is_not_a_file(pipeline_server: Served, pipeline: Recorded) -> None:
    """Only a file of the snapshot is shown: a folder (a git tree) is 404, not its bytes."""
    run = pipeline.runs[0]
    files = pipeline_server.get(f"/api/runs/{run}")["git"]["files"]
    folders = sorted({f.rsplit("/", 1)[0] for f in files if "/" in f})
    assert folders, files  # the pipeline's snapshot holds data/...
    for folder in folders:
        status, body, _ = pipeline_server.request(f"/api/runs/{run}/file?path={folder}")
        assert status == 404 and "not a file" in body["error"], body
    assert pipeline_server.get(f"/api/runs/{run}/file?path={files[0]}")["path"] == files[0]
