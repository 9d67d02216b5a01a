"""Serving the sandbox over real HTTP: `serve` for the CLI, `running_sandbox` for tests and benchmarks.

uvicorn is imported only inside these functions: importing the package (for the in-process
sandbox behind `carto-mcp serve --sandbox`) must stay fast.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carto_mcp.sandbox.app import create_app
from carto_mcp.sandbox.faults import DroppedConnection
from carto_mcp.sandbox.store import MEMORY, SandboxStore

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

__all__ = ["RunningSandbox", "running_sandbox", "serve"]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
#: Requests still running at shutdown (a stalled fault, say) are cancelled after this long.
_GRACEFUL_SHUTDOWN = 2


class _QuietDrops(logging.Filter):
    """A `drop` fault aborts a connection on purpose; uvicorn's traceback for it is noise, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


_QUIET_DROPS = _QuietDrops()


def _server(app: Starlette, host: str, port: int, *, on_bound: Callable[[int], None] | None = None) -> uvicorn.Server:
    """A uvicorn server that reports the port it actually bound (port 0 picks a free one)."""
    import uvicorn

    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if on_bound is not None and self.started:
                on_bound(self.servers[0].sockets[0].getsockname()[1])

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
    )
    return _Server(config)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    db_path: str | Path | None = None,
    *,
    faults: bool = False,
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    token_ids: bool = False,
) -> None:
    """Run the sandbox API until interrupted; prints `CARTO sandbox API on http://HOST:PORT (db: PATH)` once bound.

    `db_path=None` is a throwaway in-memory store; pass `default_db_path()` to keep state between runs.
    `faults=True` (`--instrument`) serves the test-only `/_sandbox/` routes, and says so loudly.
    """
    app = create_app(db_path, faults=faults, latency_ms=latency_ms, jitter_ms=jitter_ms, token_ids=token_ids)
    store: SandboxStore = app.state.store
    where = str(store.path) if store.path is not None else MEMORY
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    def announce(bound: int) -> None:
        base = f"http://{_url_host(host)}:{bound}"
        print(f"CARTO sandbox API on {base} (db: {where})", flush=True)
        if latency_ms or jitter_ms:
            print(f"  every request is delayed {latency_ms:g} ms (+ up to {jitter_ms:g} ms)", flush=True)
        if faults:
            print(
                f"  WARNING: instrumented: {base}/_sandbox/ answers anyone, unauthenticated: request counts "
                "(/_sandbox/requests, /_sandbox/stats), fault switches (/_sandbox/faults) and bearer rejection. "
                "For test tools only.",
                flush=True,
            )

    _server(app, host, port, on_bound=announce).run()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox served on loopback: its base URL, the app and the app's store."""

    url: str
    app: Starlette
    store: SandboxStore

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def running_sandbox(
    db_path: str | Path | None = None, *, faults: bool = False, **app_kwargs: Any
) -> Iterator[RunningSandbox]:
    """Serve `create_app(db_path, faults=faults, **app_kwargs)` on 127.0.0.1 in a background thread.

    Yields once the server accepts connections (or raises after ~10 s) and stops it on exit,
    so tests and benchmarks talk to the sandbox over real HTTP. Works from sync and async code.
    """
    app = create_app(db_path, faults=faults, **app_kwargs)
    bound: list[int] = []
    server = _server(app, "127.0.0.1", 0, on_bound=bound.append)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # SystemExit on a failed start, reported to the caller below
            errors.append(exc)

    thread = threading.Thread(target=run, name="carto-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not bound:
        if errors or not thread.is_alive():
            raise RuntimeError(f"the sandbox server did not start: {errors[0]!r}" if errors else "the sandbox exited")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(_STOP_TIMEOUT)
            raise TimeoutError(f"the sandbox server did not start within {_START_TIMEOUT:.0f} s")
        time.sleep(0.01)
    try:
        yield RunningSandbox(url=f"http://127.0.0.1:{bound[0]}", app=app, store=app.state.store)
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        app.state.store.close()
        if thread.is_alive():
            logger.warning("the sandbox server thread did not stop within %.0f s", 2 * _STOP_TIMEOUT)
