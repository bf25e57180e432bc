"""The `flor ui` HTTP server: the standard library's threading server, a small router to
`flor.ui.api`, and the static page shipped in the package.

Security: it binds 127.0.0.1 by default and answers only requests whose Host names the
address it serves (no DNS rebinding). On any other address every request needs the token
(printed in the URL, then kept in a same-site cookie). The one mutating endpoint (starting
a replay) exists only with `--allow-replay` and needs the token in an `X-Flor-Token` header,
which a cross-site page can neither read nor send without a CORS preflight we never grant.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import json
import mimetypes
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from flor.errors import FlorError, StoreError, UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
COOKIE = "flor_token"
TOKEN_HEADER = "X-Flor-Token"
MAX_BODY = 64 * 1024
_STATIC = ("index.html", "app.js", "charts.js", "style.css", "favicon.svg")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Handler)


class App:
    """What every request shares: the project, the token, the replay jobs."""

    def __init__(
        self, project: Any, host: str, token: str | None = None, require_token: bool = False
    ) -> None:
        from flor.ui.jobs import Replays

        self.project = project
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self.require_token = require_token
        self.replays = Replays(project)
        self.port = 0

    def allowed_hosts(self) -> set[str]:
        names = {self.host, *LOOPBACK} if self.host in LOOPBACK else {self.host}
        hosts = {f"{n}:{self.port}" for n in names}
        hosts |= {f"[{n}]:{self.port}" for n in names if ":" in n}
        return hosts

    def token_ok(self, offered: str | None) -> bool:
        return bool(offered) and hmac.compare_digest(str(offered), self.token)


def _static(name: str) -> bytes:
    return resources.files("flor.ui").joinpath("static", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: without this, Nagle's algorithm and the
    # browser's delayed ACK hold every response back ~40 ms on keep-alive connections
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass  # quiet: the terminal shows only the URL and errors

    # -- plumbing ------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, default=str, allow_nan=False).encode()
        self._send(status, body, "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _cookie_token(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 - a malformed cookie is just no token
            return None
        morsel = jar.get(COOKIE)
        return morsel.value if morsel else None

    def _check_host(self) -> bool:
        """On a loopback address, only the Host it serves (no DNS rebinding). Elsewhere
        every request needs the token, which a rebinding page cannot present, and other
        machines name this one as they know it (an address, a hostname): any Host."""
        app = self.server.app
        if app.require_token:
            return True
        if self.headers.get("Host", "") not in app.allowed_hosts():
            self._error(
                HTTPStatus.FORBIDDEN, "unexpected Host header: open the URL flor ui printed"
            )
            return False
        return True

    # -- verbs ---------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib's name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        if not self._check_host():
            return
        app = self.server.app
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/" and app.require_token and "token" in query:
            if not app.token_ok(query["token"]):
                self._error(HTTPStatus.FORBIDDEN, "wrong token: use the URL flor ui printed")
                return
            cookie = f"{COOKIE}={app.token}; Path=/; HttpOnly; SameSite=Strict"
            self._send(
                HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie}
            )
            return
        if app.require_token and not (
            app.token_ok(self._cookie_token()) or app.token_ok(self.headers.get(TOKEN_HEADER))
        ):
            self._error(
                HTTPStatus.UNAUTHORIZED, "this server needs its token: open the URL flor ui printed"
            )
            return
        if url.path == "/" or url.path == "/index.html":
            page = _static("index.html").replace(b"{{TOKEN}}", app.token.encode())
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            return
        if url.path.startswith("/static/"):
            name = url.path[len("/static/") :]
            if name not in _STATIC:
                self._error(HTTPStatus.NOT_FOUND, f"no static file {name!r}")
                return
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._send(HTTPStatus.OK, _static(name), f"{kind}; charset=utf-8")
            return
        if url.path.startswith("/api/"):
            self._api("GET", url.path[len("/api/") :].strip("/").split("/"), query, None)
            return
        self._error(HTTPStatus.NOT_FOUND, f"no page {url.path}")

    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        if not self._check_host():
            return
        app = self.server.app
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            self._error(HTTPStatus.FORBIDDEN, "cross-site request refused")
            return
        if not app.token_ok(self.headers.get(TOKEN_HEADER)):
            self._error(HTTPStatus.FORBIDDEN, f"missing or wrong {TOKEN_HEADER} header")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "send a JSON body under 64 KB")
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON (application/json)")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "the request body is not JSON")
            return
        url = urlsplit(self.path)
        if not url.path.startswith("/api/") or not isinstance(body, dict):
            self._error(HTTPStatus.NOT_FOUND, f"no endpoint POST {url.path}")
            return
        self._api("POST", url.path[len("/api/") :].strip("/").split("/"), {}, body)

    # -- the API -------------------------------------------------------------------------

    def _api(self, verb: str, parts: list[str], query: dict[str, str], body: Any) -> None:
        from flor.ui import api

        app = self.server.app
        try:
            route = _route(verb, parts, query, body, app)
            if route is None:
                self._error(HTTPStatus.NOT_FOUND, f"no endpoint {verb} /api/{'/'.join(parts)}")
                return
            result = route()
            if isinstance(result, tuple):  # (content type, bytes, filename) downloads
                kind, data, filename = result
                disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
                self._send(HTTPStatus.OK, data, kind, {"Content-Disposition": disposition})
                return
            self._json(HTTPStatus.OK, result)
        except api.NotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except api.Forbidden as exc:
            self._error(HTTPStatus.FORBIDDEN, str(exc))
        except UsageError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except StoreError as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except FlorError as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - one request fails, the server stays up
            print(f"flor ui: {verb} /api/{'/'.join(parts)} failed: {exc!r}", file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")


def _int(query: dict[str, str], key: str, default: int) -> int:
    try:
        return int(query.get(key, default))
    except ValueError:
        raise UsageError(f"{key} must be an integer") from None


def _route(
    verb: str, parts: list[str], query: dict[str, str], body: Any, app: App
) -> Callable[[], Any] | None:
    """The function answering a request, or None for an unknown endpoint."""
    from flor.ui import api

    project = app.project
    head, rest = parts[0], parts[1:]
    if verb == "POST":
        if head == "replay" and not rest:
            names = body.get("names") or []
            runs = body.get("runs") or []
            jobs = body.get("jobs", 1)
            if (
                not isinstance(names, list)
                or not isinstance(runs, list)
                or not isinstance(jobs, int)
            ):
                raise UsageError("send {names: [...], runs: [...], jobs: N}")
            return lambda: app.replays.status(app.replays.start(names, runs, jobs).job_id)
        return None
    routes: dict[tuple[str, int], Callable[[], Any]] = {
        ("info", 0): lambda: api.info(project),
        ("runs", 0): lambda: api.runs_page(
            project,
            where=query.get("where"),
            sort=query.get("sort", "started"),
            descending=query.get("desc", "1") != "0",
            offset=_int(query, "offset", 0),
            limit=_int(query, "limit", api.PAGE_SIZE),
            projid=query.get("projid") or None,
            complete=query.get("complete") == "1",
        ),
        ("compare", 0): lambda: api.compare(project, _listed(query.get("runs", ""))),
        ("sql", 0): lambda: api.sql(project, query.get("q", "")),
        ("sql.csv", 0): lambda: _csv(project, query.get("q", "")),
        ("versions", 0): lambda: api.versions(project),
        ("params", 0): lambda: api.params(project),
        ("hindsight", 0): lambda: api.hindsight(project, query.get("script") or None),
        ("lineage", 0): lambda: api.lineage(
            project,
            query.get("target", ""),
            query.get("direction") or "both",
            None if query.get("depth", "") in ("", "all") else _int(query, "depth", 0),
        ),
    }
    if head == "runs" and len(rest) == 1:
        return lambda: api.run_detail(project, rest[0])
    if head == "runs" and len(rest) == 2 and rest[1] == "series":
        return lambda: api.series(
            project, rest[0], query.get("name", ""), _int(query, "points", api.CURVE_POINTS)
        )
    if head == "runs" and len(rest) == 2 and rest[1] == "file":
        return lambda: api.snapshot_file(project, rest[0], query.get("path") or None)
    if head == "replay" and len(rest) == 1:
        return lambda: app.replays.status(rest[0])
    return routes.get((head, len(rest)))


def _listed(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def _csv(project: Any, text: str) -> tuple[str, bytes, str]:
    from flor.ui import api

    frame = api.sql_frame(project, text)
    return "text/csv; charset=utf-8", frame.to_csv(index=False).encode(), "flor-query.csv"


def _warm_up(project: Any) -> None:
    """Summarize the runs while the browser opens: their rows (what most pages wait for)
    and, at the same time on a connection of its own, every run's last values (what
    sorting and filtering by value need: the store's reading runs off the GIL, so the two
    overlap); then, once both are done (it would hold the GIL they need), import numpy,
    which a curve without a stored summary (any short one) needs."""

    def start() -> None:
        if project.exists():
            valuing = threading.Thread(target=_quietly, args=(project.last_values,))
            valuing.start()
            project.run_rows()
            valuing.join()
            import numpy  # noqa: F401

    _quietly(start)


def _quietly(work: Callable[[], Any]) -> None:
    """Work done ahead of a request: an error shows on the first request instead."""
    with contextlib.suppress(Exception):
        work()


def bind(app: App, port: int) -> Server:
    """The listening server; a port in use is a one-line error that names `--port`."""
    try:
        server = Server((app.host, port), app)
    except socket.gaierror:
        raise UsageError(
            f"cannot resolve --host {app.host}: pass an address like 127.0.0.1"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {app.host} is in use: choose another with --port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(
                f"{app.host} is not an address of this machine: check --host"
            ) from None
        raise FlorError(f"cannot listen on {app.host}:{port}: {exc.strerror or exc}") from None
    app.port = server.server_address[1]
    return server


WILDCARDS = ("0.0.0.0", "::", "")


def url(app: App, *, here: bool = False) -> str:
    """The address to open: for a server on every interface (0.0.0.0), this machine's
    name for other machines, or (`here`) the loopback address for a browser on it."""
    host = app.host
    if host in WILDCARDS:
        host = ("::1" if host == "::" else "127.0.0.1") if here else socket.gethostname()
    host = f"[{host}]" if ":" in host else host
    suffix = f"?token={app.token}" if app.require_token else ""
    return f"http://{host}:{app.port}/{suffix}"


def project_here(allow_replay: bool) -> Any:
    """The project the CLI would use from the current directory: its store and repository."""
    from flor.paths import db_path, find_repo_root, home_dir
    from flor.store.backend import resolve
    from flor.ui.api import Project

    root = find_repo_root()
    home = home_dir()
    return Project(home, root, resolve(db_path(home)), allow_replay=allow_replay)


def serve(
    host: str = "127.0.0.1",
    port: int = 5173,
    *,
    token: str | None = None,
    allow_replay: bool = False,
    open_browser: bool = True,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the current project's store until interrupted."""
    if token is not None and not re.fullmatch(r"[A-Za-z0-9._~-]{8,}", token):
        raise UsageError("--token needs at least 8 letters, digits or . _ ~ - (it goes in a URL)")
    project = project_here(allow_replay)
    app = App(project, host, token, require_token=host not in LOOPBACK)
    server = bind(app, port)
    address = url(app)
    announce(f"flor ui: serving {project.store} at {address}")
    threading.Thread(target=_warm_up, args=(project,), daemon=True).start()
    if open_browser:
        import webbrowser

        here = url(app, here=True)
        threading.Thread(target=webbrowser.open, args=(here,), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
