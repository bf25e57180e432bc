"""PostgreSQL for the store tests: `FLOR_TEST_PG_URL`, else a throwaway local cluster.

Every test that needs the server gets its own schema (selected through the URL's
`options=-csearch_path=...`), so tests never see each other's rows, even under xdist.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

PASSWORD = "s3cret-pw"


def _pg_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL is not installed: apt-get install -y postgresql, or set FLOR_TEST_PG_URL"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A server URL (database `postgres`, user with a password), started here if need be."""
    given = os.environ.get("FLOR_TEST_PG_URL")
    if given:
        yield given
        return
    bin_dir = _pg_bin()
    base = Path(tempfile.mkdtemp(prefix="flor-pg-"))
    as_user = {"user": "postgres"} if os.geteuid() == 0 else {}
    if as_user:
        shutil.chown(base, "postgres")
    (base / "pw").write_text(PASSWORD + "\n")
    if as_user:
        shutil.chown(base / "pw", "postgres")
    port = _free_port()
    data = base / "data"
    run = {"check": True, "capture_output": True, "text": True, **as_user}
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "flor",
            f"--pwfile={base / 'pw'}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--no-locale",
            "-E",
            "UTF8",
        ],
        **run,  # type: ignore[arg-type]
    )
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    )
    subprocess.run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        **run,  # type: ignore[arg-type]
    )
    try:
        yield f"postgresql://flor:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            **as_user,  # type: ignore[arg-type]
        )
        shutil.rmtree(base, ignore_errors=True)


def _with_schema(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _with_schema(pg_server, schema)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Run the test on each backend: sets FLOR_STORE for PostgreSQL, FLOR_HOME for both."""
    monkeypatch.setenv("FLOR_HOME", str(tmp_path / "flor-home"))
    if request.param == "postgresql":
        monkeypatch.setenv("FLOR_STORE", request.getfixturevalue("pg_url"))
    return str(request.param)
