"""`flor store migrate|info|copy` and the bad store URLs, as a user meets them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from store import pgfixtures

from flor.cli import main
from flor.store.schema import SCHEMA_VERSION
from flor.store.writer import StoreWriter

pg_server, pg_url = pgfixtures.pg_server, pgfixtures.pg_url


def flor(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(main, list(args))
    return done.exit_code, done.stdout, done.stderr


def _record_one(run_id: str) -> None:
    writer = StoreWriter()
    row = {"run_id": run_id, "projid": "p", "filename": "f.py", "tstamp": "t"}
    writer.insert_run({**row, "status": "finished", "mode": "record", "started": 1.0})
    writer.write_batch(
        run_id, [], [(run_id, "t", None, "lr", "0.1", "float", 1, None, "")], [], 2.0
    )
    writer.close()


def test_migrate_info_and_copy_from_sqlite_to_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOR_HOME", str(tmp_path / "home"))
    code, out, _ = flor("store", "migrate")
    assert (
        code == 0 and f"sqlite store {tmp_path / 'home' / 'flor.db'}: schema version 0 -> " in out
    )
    code, out, _ = flor("store", "migrate")
    assert code == 0 and f"schema version {SCHEMA_VERSION} (up to date)" in out
    _record_one("r1")
    code, out, _ = flor("store", "copy", "--to", pg_url)
    assert code == 0 and out.startswith("copied 1 runs (1 values)")
    assert "s3cret" not in out and ":***@" in out
    code, out, _ = flor("store", "copy", "--to", pg_url)
    assert code == 0 and out.startswith("copied 0 runs (0 values)") and "1 already there" in out
    code, out, _ = flor("store", "info", "--url", pg_url, "--format", "json")
    found = json.loads(out)
    assert found["backend"] == "postgresql" and found["schema_version"] == SCHEMA_VERSION
    assert found["counts"]["runs"] == 1 and found["counts"]["logs"] == 1
    assert "s3cret" not in out
    monkeypatch.setenv("FLOR_STORE", pg_url)
    code, out, _ = flor("store", "info")
    assert code == 0 and "backend: postgresql" in out and "logs: 1" in out and "s3cret" not in out
    code, out, _ = flor("query", "SELECT name, value FROM logs")
    assert code == 0 and "lr" in out


def test_query_on_postgres_is_read_only(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOR_STORE", pg_url)
    _record_one("r1")
    for sql in ("DELETE FROM logs", "UPDATE runs SET status = 'x'", "DROP TABLE runs"):
        code, _, err = flor("query", sql)
        assert code == 2 and err.strip().endswith("use SELECT (or WITH ... SELECT) statements")
    code, _, err = flor("query", "SELECT 1; DELETE FROM logs")
    assert code == 2 and err.startswith("Error: invalid SQL")
    code, out, _ = flor("query", "SELECT COUNT(*) AS n FROM logs", "--format", "csv")
    assert (code, out) == (0, "n\n1\n")


def test_newer_server_schema_is_refused_with_versions(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOR_STORE", pg_url)
    assert flor("store", "migrate")[0] == 0
    writer = StoreWriter()
    writer.transaction(
        lambda c: c.execute("UPDATE meta SET value = '42' WHERE key = ?", ("schema_version",))
    )
    writer.close()
    for command in (["store", "info"], ["store", "migrate"], ["dataframe", "loss"]):
        code, _, err = flor(*command)
        assert code == 1, command
        assert f"schema version 42 but this flor reads up to {SCHEMA_VERSION}" in err
        assert "s3cret" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://flor:s3cret-pw@127.0.0.1:1/postgres", "Connection refused"),
        ("postgresql://nobody:s3cret-pw@{host}/postgres", "password authentication failed"),
        ("postgresql://flor:wrong-s3cret@{host}/postgres", "password authentication failed"),
    ],
)
def test_unreachable_or_refused_server_is_one_masked_line(
    url: str, reason: str, pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = pg_server.split("@", 1)[1].split("/", 1)[0]
    monkeypatch.setenv("FLOR_STORE", url.format(host=host))
    for command in (["store", "migrate"], ["store", "info"], ["dataframe"], ["query", "SELECT 1"]):
        started = time.perf_counter()
        code, out, err = flor(*command)
        assert time.perf_counter() - started < 5
        assert code == 1 and out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert "cannot connect to the PostgreSQL store" in err and reason in err
        assert "s3cret" not in err


@pytest.mark.parametrize("url", ["mysql://u:s3cret@h/db", "redis://h:6379", "flor.db"])
def test_unsupported_store_urls_are_named(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOR_STORE", url)
    code, _, err = flor("store", "info")
    assert code == 2 and "unsupported store URL" in err and "s3cret" not in err
    code, _, err = flor("store", "copy", "--to", url)
    assert code == 2 and "unsupported store URL" in err


def test_store_help_is_documented() -> None:
    code, out, _ = flor("store", "--help")
    assert code == 0
    assert all(name in out for name in ("migrate", "info", "copy"))
