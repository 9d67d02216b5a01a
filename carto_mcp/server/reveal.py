"""The reveal pages of one server: where they are served, and the route that serves each once.

Over streamable HTTP and SSE the page is a route of the same server (`/reveal/<id>`), behind
the same Origin, Host and bearer checks as `/mcp`. Over stdio (and in-process) there is no
HTTP server, so the first secret that needs a page starts a small listener: bound to
127.0.0.1 only, on a port the OS picks, behind a Host check (a page on another site cannot
reach it through DNS rebinding), in its own thread so it never touches the stdio loop or the
process's signal handlers. It stops when the server's lifespan ends.

When a page the client was asked to open (URL-mode elicitation) has been read, the session
that asked is told so with `notifications/elicitation/complete`, so the client can close
whatever it showed. The page may be read on another thread's loop (the stdio listener) after
the call has returned: the notice is handed to the session's own loop from a short-lived
thread, so serving the page never waits on it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from carto_mcp.credentials.reveal import RevealStore
from carto_mcp.masking import REVEAL_PREFIX
from carto_mcp.server.http import Guard, allowed_places
from carto_mcp.server.reveal_page import GONE_TEXT, UNKNOWN_TEXT, headers, render

if TYPE_CHECKING:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["REVEAL_PATH", "RevealDesk"]

logger = logging.getLogger("carto_mcp.server")

REVEAL_PATH = REVEAL_PREFIX + "{ident}"
#: How a session is told that the page it asked the person to open has been read.
Notice = Callable[[], Coroutine[Any, Any, None]]
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class RevealDesk:
    """The store of waiting secrets and, over stdio, the loopback listener that serves their pages."""

    def __init__(self, store: RevealStore) -> None:
        self.store = store
        #: Set by the HTTP app when its routes need a bearer, which a browser opening a link does not send.
        self.behind_bearer = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._lock = threading.Lock()
        #: ident -> (how to tell the session that asked, its loop, when the page expires)
        self._watchers: dict[str, tuple[Notice, anyio.lowlevel.EventLoopToken, float]] = {}

    def watch(self, ident: str, notify: Notice) -> None:
        """Call `notify` on this (the caller's) loop once the page `ident` has been read."""
        token = anyio.lowlevel.current_token()
        now = time.monotonic()
        with self._lock:
            for stale in [i for i, (_, _, until) in self._watchers.items() if until <= now]:
                del self._watchers[stale]
            self._watchers[ident] = (notify, token, now + self.store.ttl)

    def forget(self, ident: str) -> None:
        with self._lock:
            self._watchers.pop(ident, None)

    def _announce(self, ident: str) -> None:
        """Hand the notice that `ident` was read to the loop of the session that asked, without waiting."""
        with self._lock:
            watcher = self._watchers.pop(ident, None)
        if watcher is None:
            return
        notify, token, _ = watcher

        def send() -> None:
            try:
                anyio.from_thread.run(notify, token=token)
            except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                # The session ended (its loop finished, its stream closed): nobody is left to tell.
                logger.debug("could not send elicitation/complete: %s", type(exc).__name__)

        threading.Thread(target=send, name="carto-mcp-reveal-notice", daemon=True).start()

    async def endpoint(self, request: Request) -> Response:
        """GET /reveal/<id>: the page once, then 410; 404 for an id never issued. Nothing else takes it."""
        from starlette.responses import Response

        if request.method != "GET":  # a HEAD (a link preview, say) must not use up the one view
            return Response("Use GET.", 405, headers={**headers(), "Allow": "GET"}, media_type="text/plain")
        ident = str(request.path_params.get("ident", ""))
        found = self.store.take(ident)
        if found == "unknown":
            return Response(UNKNOWN_TEXT, 404, headers=headers(), media_type="text/plain")
        if found == "gone":
            return Response(GONE_TEXT, 410, headers=headers(), media_type="text/plain")
        body, sent = render(found)
        self._announce(ident)
        return Response(body, 200, headers=sent)

    def loopback_url(self) -> str:
        """The listener's base URL, starting it on first need (blocking: call it from a worker thread)."""
        with self._lock:
            if self._url is None:
                self._url = self._start()
            return self._url

    def _start(self) -> str:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        origins, hosts = allowed_places("127.0.0.1", port, (), ())
        app = Guard(
            Starlette(routes=[Route(REVEAL_PATH, self.endpoint, methods=["GET"])]),
            origins=origins,
            hosts=hosts,
            bearer=None,
            message_paths=(),
        )
        config = uvicorn.Config(
            app, log_level="warning", log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        failed: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # SystemExit on a failed start: reported below
                failed.append(exc)

        thread = threading.Thread(target=run, name="carto-mcp-reveal", daemon=True)
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if failed or not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise OSError("the loopback listener for reveal pages did not start")
            time.sleep(0.005)
        self._server, self._thread = server, thread
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop the loopback listener (if it runs) and wipe the secrets it served: the port is closed on return.

        Over HTTP there is no listener and nothing is wiped here: the pages are routes of the app,
        and an SSE session ending (its lifespan) must not take the page the person was just sent to.
        """
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = self._url = None
        if server is None or thread is None:
            return
        self.store.wipe_all()
        with self._lock:
            self._watchers.clear()  # their pages are wiped: none will be read
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            logger.warning("the reveal page listener did not stop within %.0f s", 2 * _STOP_TIMEOUT)

    def routes(self) -> list[tuple[str, Any]]:
        """The route an HTTP server adds for the pages (behind its own Origin, Host and bearer checks)."""
        return [(REVEAL_PATH, self.endpoint)]

    def base_url(self, request: Any) -> str | None:
        """The base URL of this call's reveal pages when it came over HTTP (the Host it used), else None."""
        if request is None or not hasattr(request, "base_url"):
            return None
        return str(request.base_url).rstrip("/")
