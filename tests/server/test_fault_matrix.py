"""Nothing lost: every fault the sandbox can inject into a create, a rotate or a delete, cell by cell.

The contract, whatever the fault: the call succeeded; or the credential does not exist; or its
value is in the result (or in the secret file that was asked for). Never a credential that
exists and whose value nobody was shown. The one exception is an M2M client whose create
answer was lost: its secret existed only in that answer, so the best possible is an error that
names the client and says the secret was lost.

Each cell runs one tool through an in-memory MCP client on `build_server`, against the sandbox
over loopback HTTP with one fault queued on the request that matters (`times: 1`), then judges
the result against the sandbox's store and its request counter. The CARTO client's deadline
cannot be shortened through a public setting (`RetryPolicy` is not reachable from
`build_server`), so the servers here get a real loopback transport, through `build_server`'s
public `transport` parameter, whose read timeout is one second: a stall longer than that is an
answer lost to a timeout; a shorter one must simply succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp_types import CallToolResult

from carto_mcp.config import Settings
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import CartoMCP, build_server

from .conftest import connect, dump, grant, ok, text_of

pytestmark = pytest.mark.anyio

BEARER = "fault-matrix-bearer-7f3a9c"
#: The read timeout of the servers under test: the "client deadline" a long stall outlasts.
READ_TIMEOUT = 1.0
SECRET_VARIABLE = "CARTO_API_ACCESS_TOKEN"
TOKEN_ARGS: dict[str, Any] = {"grants": [grant()], "apis": ["maps"], "name": "matrix"}
#: What the credentials layer says when it found the credential a lost answer made.
RECOVERED = "answer to this create was lost"
#: The one create request each creating tool sends, as the sandbox counts it.
CREATES = {"create_token": "POST /v3/tokens", "create_m2m": "POST /v3/oauth-clients", "rotate_token": "POST /v3/tokens"}

FAULTS: dict[str, dict[str, Any]] = {
    "503": {"mode": "status", "status": 503},
    "502": {"mode": "status", "status": 502},
    "html-502": {"mode": "html", "status": 502},
    "drop": {"mode": "drop"},
    "502-after": {"mode": "status", "status": 502, "after": True},
    "504-after": {"mode": "status", "status": 504, "after": True},
    "html-502-after": {"mode": "html", "status": 502, "after": True},
    "drop-after": {"mode": "drop", "after": True},
    "stall-past-read-timeout": {"mode": "stall", "stall_seconds": 3 * READ_TIMEOUT},
    "stall-within-deadline": {"mode": "stall", "stall_seconds": 0.3 * READ_TIMEOUT},
}


@dataclass(frozen=True)
class Operation:
    """One tool call and the request its fault goes on."""

    tool: str
    method: str
    path_prefix: str
    #: Needs a token to exist before the call (rotate, revoke).
    needs_old: bool = False
    #: Asks for the secret in secret_output_file instead of the result.
    to_file: bool = False


OPERATIONS: dict[str, Operation] = {
    "create_token": Operation("create_token", "POST", "/v3/tokens"),
    "create_token-to-file": Operation("create_token", "POST", "/v3/tokens", to_file=True),
    "create_m2m": Operation("create_m2m", "POST", "/v3/oauth-clients"),
    "rotate_token-on-create": Operation("rotate_token", "POST", "/v3/tokens", needs_old=True),
    "rotate_token-on-delete": Operation("rotate_token", "DELETE", "/v3/tokens/", needs_old=True),
    "revoke_credential-token": Operation("revoke_credential", "DELETE", "/v3/tokens/", needs_old=True),
}

# What each fault does to a create: refused outright, lost before CARTO made it (the server
# looks and says it was not created), lost after CARTO made it (the server looks and delivers
# it), or no fault at all as far as the caller can tell.
_CREATE = {
    "503": "refused",
    "502": "not created",
    "html-502": "not created",
    "drop": "not created",
    "502-after": "recovered",
    "504-after": "recovered",
    "html-502-after": "recovered",
    "drop-after": "recovered",
    "stall-past-read-timeout": "recovered",
    "stall-within-deadline": "succeeded",
}
_M2M = {f: "secret lost, client named" if outcome == "recovered" else outcome for f, outcome in _CREATE.items()}
_ROTATE_CREATE = {f: "rotated" if outcome in ("recovered", "succeeded") else outcome for f, outcome in _CREATE.items()}
#: A DELETE is idempotent: one fault is retried away, and an earlier attempt's lost answer reads as done.
EXPECTED: dict[str, dict[str, str]] = {
    "create_token": _CREATE,
    "create_token-to-file": _CREATE,
    "create_m2m": _M2M,
    "rotate_token-on-create": _ROTATE_CREATE,
    "rotate_token-on-delete": dict.fromkeys(FAULTS, "rotated"),
    "revoke_credential-token": dict.fromkeys(FAULTS, "revoked"),
}
CELLS = [pytest.param(op, fault, EXPECTED[op][fault], id=f"{op}:{fault}") for op in OPERATIONS for fault in FAULTS]


class ShortReads(httpx2.AsyncBaseTransport):
    """A real loopback HTTP transport whose read timeout is READ_TIMEOUT (what build_server's `transport` takes)."""

    def __init__(self) -> None:
        self._http = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout = {**request.extensions.get("timeout", {}), "read": READ_TIMEOUT}
        request.extensions = {**request.extensions, "timeout": timeout}
        return await self._http.handle_async_request(request)

    async def aclose(self) -> None:
        await self._http.aclose()


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One loopback sandbox with its fault switches for the module (starting one per cell is the slow part)."""
    with running_sandbox(tmp_path_factory.mktemp("matrix") / "matrix.db", faults=True) as running:
        yield running


@pytest.fixture
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The shared sandbox, emptied for this cell: no credentials (so none confuses a recovery), faults or counts."""
    shared_sandbox.store.clear()
    clear_faults(shared_sandbox)
    reset_counts(shared_sandbox)
    return shared_sandbox


def queue_fault(sandbox: RunningSandbox, fault: dict[str, Any], op: Operation, *, times: int = 1) -> None:
    body = {**fault, "method": op.method, "path_prefix": op.path_prefix, "times": times}
    httpx2.post(f"{sandbox.url}/_sandbox/faults", json=body, timeout=5).raise_for_status()


def clear_faults(sandbox: RunningSandbox) -> None:
    httpx2.delete(f"{sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()


def request_counts(sandbox: RunningSandbox) -> dict[str, int]:
    counts: dict[str, int] = httpx2.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    return counts


def reset_counts(sandbox: RunningSandbox) -> None:
    httpx2.delete(f"{sandbox.url}/_sandbox/requests", timeout=5).raise_for_status()


def tokens_in(sandbox: RunningSandbox) -> dict[str, dict[str, Any]]:
    """Every token the store holds, by value."""
    rows, _ = sandbox.store.list_tokens(limit=1000)
    return {row["token"]: row for row in rows}


def clients_in(sandbox: RunningSandbox) -> dict[str, dict[str, Any]]:
    """Every OAuth client the store holds, by client id."""
    rows, _ = sandbox.store.list_clients(limit=1000)
    return {row["client_id"]: row for row in rows}


def server_on(sandbox: RunningSandbox) -> CartoMCP:
    settings = Settings(profile=ProfileInputs(token=BEARER, base_url=sandbox.url), yes=True)
    return build_server(settings, transport=ShortReads(), environ={})


@dataclass
class Cell:
    """What one call did: its result, the store before and after, the requests it sent, the secret file."""

    sandbox: RunningSandbox
    op: Operation
    result: CallToolResult
    old: dict[str, Any] | None
    tokens_before: dict[str, dict[str, Any]]
    clients_before: dict[str, dict[str, Any]]
    counts: dict[str, int]
    secret_file: Path

    @property
    def new_tokens(self) -> dict[str, dict[str, Any]]:
        return {v: t for v, t in tokens_in(self.sandbox).items() if v not in self.tokens_before}

    @property
    def new_clients(self) -> list[str]:
        return [i for i in clients_in(self.sandbox) if i not in self.clients_before]

    @property
    def old_exists(self) -> bool:
        assert self.old is not None
        return self.sandbox.store.get_token(self.old["token"]) is not None

    @property
    def text(self) -> str:
        return text_of(self.result)

    @property
    def seen(self) -> str:
        """Everything the caller was shown: the whole result, and the secret file when one was asked for."""
        shown = dump(self.result)
        if self.op.to_file and self.secret_file.exists():
            shown += "\n" + self.secret_file.read_text(encoding="utf-8")
        return shown

    def why(self) -> str:
        said = self.text if self.result.is_error else self.result.structured_content
        return f"requests {self.counts}; result: {said}"


async def run_cell(
    sandbox: RunningSandbox, tmp_path: Path, op: Operation, fault: dict[str, Any], *, times: int = 1
) -> Cell:
    """Set up, queue the fault, run the one call, and note the store and the request counts around it."""
    secret_file = tmp_path / "secret.env"
    async with connect(server_on(sandbox)) as client:
        old = None
        if op.needs_old:
            old = ok(await client.call_tool("create_token", {**TOKEN_ARGS, "name": "old"}))
        tokens_before, clients_before = tokens_in(sandbox), clients_in(sandbox)
        reset_counts(sandbox)
        queue_fault(sandbox, fault, op, times=times)
        result = await client.call_tool(op.tool, arguments_for(op, old, secret_file))
        counts = request_counts(sandbox)
        clear_faults(sandbox)
    return Cell(sandbox, op, result, old, tokens_before, clients_before, counts, secret_file)


def arguments_for(op: Operation, old: dict[str, Any] | None, secret_file: Path) -> dict[str, Any]:
    if op.tool == "create_token":
        return {**TOKEN_ARGS, **({"secret_output_file": str(secret_file)} if op.to_file else {})}
    if op.tool == "create_m2m":
        return {"title": "matrix"}
    assert old is not None
    if op.tool == "rotate_token":
        return {"id": old["id"]}
    return {"kind": "token", "id": old["id"]}


def judge(cell: Cell) -> str:
    """Check the contract for one cell and name its outcome; every assertion shows the requests sent."""
    why = cell.why()
    creates = sum(n for key, n in cell.counts.items() if key.startswith("POST "))
    assert creates <= 1, f"a create was sent {creates} times in one call; {why}"
    new_tokens, new_clients = cell.new_tokens, cell.new_clients
    for value, token in new_tokens.items():
        assert value in cell.seen, f"token {token['name']!r} exists and its value was never shown; {why}"
        if cell.op.to_file:  # a write that cannot fail here: the value goes to the file, and only there
            written = cell.secret_file.read_text(encoding="utf-8")
            assert f"{SECRET_VARIABLE}={value}" in written, f"the secret file lacks the new token; {why}"
            assert value not in dump(cell.result), f"asked for a file, yet the value is in the result; {why}"
    lost_secret = [client_id for client_id in new_clients if not secret_shown(cell, client_id)]
    for client_id in lost_secret:
        # The best possible: the secret was only ever in the answer that was lost.
        assert cell.result.is_error, f"M2M client {client_id} exists and its secret was never shown; {why}"
        assert client_id in cell.text, f"the error does not name the client {client_id} it made; {why}"
        assert "secret" in cell.text and "lost" in cell.text, f"the error does not say the secret was lost; {why}"
        assert f"revoke_credential(kind='m2m', id='{client_id}')" in cell.text, f"no usable revoke call; {why}"
    if "was not created" in cell.text:
        assert not new_tokens and not new_clients, f"says it was not created, yet it exists; {why}"
    if cell.op.tool == "rotate_token":
        return judge_rotation(cell, new_tokens, why)
    if cell.op.tool == "revoke_credential":
        return judge_revoke(cell, why)
    made = len(new_tokens) + len(new_clients)
    if cell.result.is_error:
        if lost_secret:
            return "secret lost, client named"
        assert made == 0, f"an error, and a credential was made; {why}"
        return "not created" if "was not created" in cell.text else "refused"
    created = ok(cell.result)
    assert made == 1, f"a successful create made {made} credentials; {why}"
    if cell.op.tool == "create_token" and not cell.op.to_file:
        assert created["token"] in new_tokens, f"the result holds another token than the one made; {why}"
    return "recovered" if any(RECOVERED in w for w in created["warnings"]) else "succeeded"


def secret_shown(cell: Cell, client_id: str) -> bool:
    """The result holds this client's real secret (the store keeps only its digest, so it is asked)."""
    shown = cell.result.structured_content or {}
    secret = None if cell.result.is_error else shown.get("client_secret")
    return (
        isinstance(secret, str)
        and shown.get("id") == client_id
        and cell.sandbox.store.check_client_secret(client_id, secret)
    )


def judge_rotation(cell: Cell, new_tokens: dict[str, dict[str, Any]], why: str) -> str:
    """A rotation delivers its replacement whatever happens to the old token, and tells the truth about the old one."""
    if cell.result.is_error:
        assert cell.old_exists, f"the rotation failed and the old token is gone; {why}"
        assert not new_tokens, why
        return "not created" if "was not created" in cell.text else "refused"
    rotated = ok(cell.result)
    new = rotated["new"]
    assert new is not None and new["token"] in new_tokens, f"the replacement is not the token in the store; {why}"
    assert len(new_tokens) == 1, f"one rotation made {len(new_tokens)} tokens; {why}"
    if cell.old_exists:
        assert rotated["status"] == "replacement_created" and not rotated["old_revoked"], why
        assert "still works" in rotated["message"], f"the old token still works and the result does not say so; {why}"
        return "replacement made, old still works"
    assert rotated["status"] == "rotated" and rotated["old_revoked"], f"the old token is gone, yet {why}"
    return "rotated"


def judge_revoke(cell: Cell, why: str) -> str:
    """A revoke says revoked exactly when the token is gone."""
    if cell.result.is_error:
        assert cell.old_exists, f"the revoke reported a failure, yet the token is gone; {why}"
        return "not revoked"
    assert ok(cell.result)["status"] == "revoked", why
    assert not cell.old_exists, f"reported revoked, yet the token still exists; {why}"
    return "revoked"


# --- the matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "fault", "expected"), CELLS)
async def test_every_fault_on_every_mutation_loses_nothing(
    sandbox: RunningSandbox,
    tmp_path: Path,
    operation: str,
    fault: str,
    expected: str,
) -> None:
    """One fault (times 1) on the request that matters: the call succeeded, or the credential does not exist,
    or its value is in the result or the secret file; the create was sent once; the outcome is the one this
    fault means (the request counts are printed, and in every failure message)."""
    op = OPERATIONS[operation]
    cell = await run_cell(sandbox, tmp_path, op, FAULTS[fault])
    outcome = judge(cell)
    print(f"{operation} under {fault}: {outcome}; requests {cell.counts}")  # shown with -rP, and on failure
    assert outcome == expected, f"{operation} under {fault}: {outcome}, expected {expected}; {cell.why()}"
    create = CREATES.get(op.tool)
    if create is not None:
        assert cell.counts.get(create) == 1, f"the create was sent {cell.counts.get(create, 0)} times; {cell.why()}"


#: Faults for a DELETE that keeps failing past every retry: refused, or carried out with every answer lost.
PERSISTENT = [f for f in FAULTS if not f.startswith("stall")]


@pytest.mark.parametrize("fault", PERSISTENT)
async def test_a_rotation_whose_revoke_keeps_failing_delivers_the_new_token_and_tells_the_truth_about_the_old(
    sandbox: RunningSandbox, tmp_path: Path, fault: str
) -> None:
    """rotate_token --yes with every DELETE attempt faulted: the replacement is in the result and was created
    once; a refused revoke leaves the old token, reported as still working with the call that retries the
    revoke; a revoke carried out with every answer lost is reported as done (the old token is gone)."""
    cell = await run_cell(sandbox, tmp_path, OPERATIONS["rotate_token-on-delete"], FAULTS[fault], times=10)
    outcome = judge(cell)
    carried_out = bool(FAULTS[fault].get("after"))
    assert outcome == ("rotated" if carried_out else "replacement made, old still works"), cell.why()
    assert cell.counts.get("POST /v3/tokens") == 1, cell.why()
    assert cell.counts.get("DELETE /v3/tokens/{token}", 0) >= 2, f"the DELETE was not retried; {cell.why()}"
    if not carried_out:
        assert cell.old is not None
        retry = f"revoke_credential(kind='token', id='{cell.old['id']}'"
        assert retry in ok(cell.result)["message"], f"no call that retries the revoke; {cell.why()}"


@pytest.mark.parametrize("fault", PERSISTENT)
async def test_a_revoke_whose_delete_keeps_failing_says_revoked_exactly_when_the_token_is_gone(
    sandbox: RunningSandbox, tmp_path: Path, fault: str
) -> None:
    """revoke_credential with every DELETE attempt faulted: an error while the token still exists, "revoked"
    when an attempt deleted it and only the answers were lost; never a claim the store contradicts."""
    cell = await run_cell(sandbox, tmp_path, OPERATIONS["revoke_credential-token"], FAULTS[fault], times=10)
    outcome = judge(cell)
    assert outcome == ("revoked" if FAULTS[fault].get("after") else "not revoked"), cell.why()
    assert not any(key.startswith("POST ") for key in cell.counts), cell.why()
