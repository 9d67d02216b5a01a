"""Test instrumentation: request counters, injected faults and revoked bearers.

Retries, timeouts and "did the create happen?" logic can only be tested against a service
that misbehaves on cue. A test queues a fault (`POST /_sandbox/faults`, routes present only
with `create_app(faults=True)`); the next matching requests get it before auth or handling:

- `status`: that status with a JSON error body (and `Retry-After` when given)
- `html`:   that status (default 502) with a proxy-style HTML page
- `stall`:  handle the request, then hold the answer `stall_seconds` (client timeouts;
            the change happens even if the client gives up, as with a slow service)
- `drop`:   start a response, send a few bytes, then abort the connection

With `"after": true` a `status`, `html` or `drop` fault lets the request be handled first and
replaces only its answer: the change happens and its answer is lost, as when a gateway gives
up on a slow upstream (502/504) or a connection breaks on the way back. With `"skip": N` the
first N matching requests pass untouched (a 429 burst in the middle of a page walk).

Every request outside `/_sandbox/` is counted as `"METHOD /path-template"`, so a test can
assert how many times a client really called the service; `GET /_sandbox/stats` adds the
number of requests in flight (and its peak) and how many times each list page was served.

The same middleware can delay every answer (`latency_ms` plus up to `jitter_ms` after its
request arrived), so benchmarks and tests see the round-trip time a real CARTO API has, not
loopback's.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl

import anyio
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carto_mcp import contract
from carto_mcp.errors import RuleError

__all__ = ["SANDBOX_PREFIX", "DroppedConnection", "Fault", "FaultBox", "Instrument", "error_body"]

#: Test-only routes live under this prefix; they need no auth and are never counted or faulted.
SANDBOX_PREFIX = "/_sandbox"

FaultMode = Literal["status", "drop", "stall", "html"]
FAULT_MODES: tuple[FaultMode, ...] = ("status", "drop", "stall", "html")
_DROP_DECLARED_LENGTH = 100
_DROP_SENT = b'{"data": ['


def error_body(status: int, description: str) -> dict[str, str]:
    """(D) The API's error shape: {"error": <reason>, "description": <what and why>}."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return {"error": phrase[:1] + phrase[1:].lower(), "description": description}


class DroppedConnection(Exception):
    """Raised on purpose mid-response by a `drop` fault so the server aborts the connection."""


@dataclass
class Fault:
    """One queued fault; `times` counts down as matching requests consume it."""

    mode: FaultMode
    status: int = 503
    times: int = 1
    method: str | None = None
    path_prefix: str | None = None
    retry_after: int | None = None
    stall_seconds: float = 5.0
    #: Handle the request first, then answer with the fault instead of the real reply.
    after: bool = False
    #: Let this many matching requests through untouched first (a fault in the middle of a walk).
    skip: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Fault:
        """Validate a `POST /_sandbox/faults` body; RuleError names the bad field."""
        unknown = sorted(set(body) - set(cls.__dataclass_fields__))
        if unknown:
            raise RuleError(f"unknown field {unknown[0]!r}: a fault takes {', '.join(cls.__dataclass_fields__)}")
        mode = body.get("mode")
        if mode not in FAULT_MODES:
            raise RuleError(f"mode must be one of {', '.join(FAULT_MODES)}")
        status = body.get("status") or (502 if mode == "html" else 503)
        times = body.get("times", 1)
        method, prefix = body.get("method"), body.get("path_prefix")
        retry_after, stall = body.get("retry_after"), body.get("stall_seconds", 5.0)
        after, skip = body.get("after", False), body.get("skip", 0)
        if not _is_int(status) or not 400 <= status <= 599:
            raise RuleError("status must be an integer from 400 to 599")
        if not _is_int(times) or times < 1:
            raise RuleError("times must be an integer >= 1")
        if method is not None and not isinstance(method, str):
            raise RuleError("method must be a string or null")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
            raise RuleError("path_prefix must be a path starting with '/' or null")
        if retry_after is not None and (not _is_int(retry_after) or retry_after < 0):
            raise RuleError("retry_after must be an integer >= 0 or null")
        if isinstance(stall, bool) or not isinstance(stall, (int, float)) or not 0 <= stall <= 600:
            raise RuleError("stall_seconds must be a number from 0 to 600")
        if not isinstance(after, bool):
            raise RuleError("after must be true or false")
        if not _is_int(skip) or skip < 0:
            raise RuleError("skip must be an integer >= 0")
        return cls(
            mode=mode,
            status=status,
            times=times,
            method=method.upper() if method else None,
            path_prefix=prefix,
            retry_after=retry_after,
            stall_seconds=float(stall),
            after=after and mode != "stall",
            skip=skip,
        )

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    async def apply(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if self.after:

            async def discard(message: Message) -> None:
                return None

            await app(scope, receive, discard)  # the change happens; its answer never leaves
        if self.mode == "stall":
            # Handle now, answer late: like a slow service, the change happens even if the client gives up.
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            await app(scope, receive, hold)
            with anyio.move_on_after(self.stall_seconds):
                while (await receive())["type"] != "http.disconnect":
                    pass
                return  # the client hung up while waiting: nobody is left to answer
            for message in held:
                await send(message)
        elif self.mode == "status":
            headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
            body = error_body(self.status, "sandbox fault injected for testing")
            await JSONResponse(body, status_code=self.status, headers=headers)(scope, receive, send)
        elif self.mode == "html":
            await HTMLResponse(_proxy_page(self.status), status_code=self.status)(scope, receive, send)
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(_DROP_DECLARED_LENGTH).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _DROP_SENT, "more_body": True})
            raise DroppedConnection("sandbox fault: connection dropped mid-response on purpose")


def _page_param(scope: Scope) -> str | None:
    """The `page` query parameter of a list request, when there is one."""
    query: bytes = scope.get("query_string", b"")
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == contract.PAGE_PARAM:
            return value
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _proxy_page(status: int) -> str:
    """What a reverse proxy in front of the API sends when the upstream fails: HTML, not JSON."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    title = f"{status} {phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


class FaultBox:
    """Queued faults, request counters and revoked bearers of one app; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        self._pages: Counter[str] = Counter()
        self._rejected: set[str] = set()
        self._in_flight = 0
        self._peak = 0

    def reset(self) -> None:
        """Forget queued faults, counters and rejected bearers (a fresh start between tests)."""
        with self._lock:
            self._faults.clear()
            self._counts.clear()
            self._rejected.clear()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The first queued fault matching this request, consuming one of its `times` (or of its `skip`)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._pages.clear()
            self._peak = self._in_flight

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def served_page(self, key: str) -> None:
        with self._lock:
            self._pages[key] += 1

    def stats(self) -> dict[str, Any]:
        """Request counts, requests in flight now and at most since the last reset, list pages served."""
        with self._lock:
            return {
                "requests": dict(self._counts),
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak,
                "pages_served": dict(self._pages),
            }

    def reject(self, bearer: str) -> None:
        with self._lock:
            self._rejected.add(bearer)

    def is_rejected(self, bearer: str) -> bool:
        with self._lock:
            return bearer in self._rejected


class Instrument:
    """ASGI middleware: delay, count and track each request, then apply a queued fault if one matches."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        box: FaultBox,
        routes: Sequence[BaseRoute],
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
    ) -> None:
        self.app = app
        self.box = box
        self.routes = routes
        self.latency = max(latency_ms, 0.0) / 1000
        self.jitter = max(jitter_ms, 0.0) / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        template = self._template(scope)
        self.box.count(f"{method} {template}")
        self.box.started()
        try:
            if self.latency or self.jitter:
                send = self._late(send, anyio.current_time() + self.latency + random.uniform(0, self.jitter))
            fault = self.box.take(method, scope["path"])
            if fault is not None:
                await fault.apply(self.app, scope, receive, send)
                return
            page = _page_param(scope) if method == "GET" else None
            status: list[int] = []
            answer = send

            async def watch(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await answer(message)

            await self.app(scope, receive, watch if page else send)
            if page and status == [200]:
                self.box.served_page(f"{template}?page={page}")
        finally:
            self.box.finished()

    @staticmethod
    def _late(send: Send, due: float) -> Send:
        """`send`, holding the answer until `due`: the request is handled at once, its answer leaves late.

        So a request costs the latency end to end, and the sandbox's own work on concurrent
        requests overlaps their wait, as a service with many workers behind one address does;
        were it added on top, one Python process would make 8 concurrent pages cost 8 times its CPU.
        """

        async def late(message: Message) -> None:
            if message["type"] == "http.response.start":
                await anyio.sleep(max(due - anyio.current_time(), 0.0))
            await send(message)

        return late

    def _template(self, scope: Scope) -> str:
        """The matched route's path template (so token values never become keys); else the raw path."""
        partial: str | None = None
        for route in self.routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", None)
            if match == Match.FULL and path:
                return str(path)
            if match == Match.PARTIAL and partial is None and path:
                partial = str(path)
        return partial or scope["path"]
