"""Confirmation of destructive calls: elicitation when the client can ask, a one-time code when it cannot."""

from __future__ import annotations

from typing import Any

import mcp_types
import pytest

from carto_mcp.api import InputError
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.confirm import Confirmer, Operation

from .conftest import connect, error_text, grant, ok, server_for, settings_for, token_count

pytestmark = pytest.mark.anyio

MODES = [pytest.param("auto", id="modern"), pytest.param("legacy", id="legacy")]


class Asker:
    """An elicitation callback that answers every question the same way and remembers what it was asked."""

    def __init__(self, action: str, content: dict[str, Any] | None = None) -> None:
        self.action = action
        self.content = content if content is not None else ({"confirm": True} if action == "accept" else None)
        self.messages: list[str] = []

    async def __call__(self, context: Any, params: Any) -> mcp_types.ElicitResult:
        self.messages.append(params.message)
        return mcp_types.ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


async def new_token(client: Any, **extra: Any) -> dict[str, Any]:
    args = {"grants": [grant()], "apis": ["maps"], **extra}
    return ok(await client.call_tool("create_token", args))


# --- elicitation -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_accepting_the_elicitation_revokes(sandbox: RunningSandbox, mode: str) -> None:
    """A client that can elicit is asked once, naming the credential; accepting deletes it."""
    asker = Asker("accept")
    async with connect(settings_for(sandbox, secrets="inline"), mode=mode, elicitation_callback=asker) as client:
        token = await new_token(client, name="doomed")
        result = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
    assert result["status"] == "revoked"
    assert len(asker.messages) == 1
    assert token["id"] in asker.messages[0] and "doomed" in asker.messages[0]
    assert token["token"] not in asker.messages[0]
    assert token_count(sandbox) == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_declining_or_cancelling_the_elicitation_deletes_nothing(
    sandbox: RunningSandbox, mode: str, action: str
) -> None:
    """Decline and cancel are a normal result with status 'cancelled', not an error, and nothing is deleted."""
    asker = Asker(action)
    async with connect(settings_for(sandbox, secrets="inline"), mode=mode, elicitation_callback=asker) as client:
        spa = ok(await client.call_tool("create_spa", {"title": "keep me"}))
        result = await client.call_tool("revoke_credential", {"kind": "spa", "id": spa["id"]})
        still = ok(await client.call_tool("get_credential", {"kind": "spa", "id": spa["id"]}))
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == "cancelled"
    assert "confirmation_code" not in result.structured_content
    assert len(asker.messages) == 1
    assert still["client"]["title"] == "keep me"


@pytest.mark.parametrize("mode", MODES)
async def test_accepting_with_confirm_false_deletes_nothing(sandbox: RunningSandbox, mode: str) -> None:
    """An 'accept' whose form says confirm=false is a no, not a yes."""
    asker = Asker("accept", {"confirm": False})
    async with connect(settings_for(sandbox, secrets="inline"), mode=mode, elicitation_callback=asker) as client:
        token = await new_token(client)
        result = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
    assert result["status"] == "cancelled"
    assert token_count(sandbox) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_an_update_that_removes_a_grant_is_elicited(sandbox: RunningSandbox, mode: str) -> None:
    """Removing a grant asks first and says what goes; declining leaves the token as it was."""
    asker = Asker("decline")
    async with connect(settings_for(sandbox, secrets="inline"), mode=mode, elicitation_callback=asker) as client:
        token = await new_token(client, grants=[grant(), grant("carto.shared.other")])
        change = {"kind": "token", "id": token["id"], "remove_grants": [grant("carto.shared.other")]}
        declined = ok(await client.call_tool("update_credential", change))
        asker.action, asker.content = "accept", {"confirm": True}
        accepted = ok(await client.call_tool("update_credential", change))
    assert declined["status"] == "cancelled"
    assert accepted["status"] == "updated"
    assert len(asker.messages) == 2 and "carto.shared.other" in asker.messages[0]
    assert [g["source"] for g in accepted["token"]["grants"]] == ["carto.shared.demo_table"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_update_that_only_adds_is_not_confirmed(sandbox: RunningSandbox, mode: str) -> None:
    """Adding a grant or renaming takes nothing away, so the user is not asked."""
    asker = Asker("decline")
    async with connect(settings_for(sandbox, secrets="inline"), mode=mode, elicitation_callback=asker) as client:
        token = await new_token(client)
        result = ok(
            await client.call_tool(
                "update_credential",
                {"kind": "token", "id": token["id"], "name": "more", "add_grants": [grant("carto.shared.more")]},
            )
        )
    assert result["status"] == "updated" and result["removes"] == []
    assert asker.messages == []


async def test_yes_revokes_at_once_without_asking(sandbox: RunningSandbox) -> None:
    """With yes=True (trusted automation) a revoke neither elicits nor needs a code."""
    asker = Asker("decline")
    async with connect(settings_for(sandbox, yes=True), elicitation_callback=asker) as client:
        m2m = ok(await client.call_tool("create_m2m", {"title": "svc"}))
        result = ok(await client.call_tool("revoke_credential", {"kind": "m2m", "id": m2m["id"]}))
    assert result["status"] == "revoked"
    assert asker.messages == []
    assert sandbox.store.get_client(m2m["id"]) is None


async def test_a_stateless_server_uses_the_two_step_flow_even_for_eliciting_clients(sandbox: RunningSandbox) -> None:
    """A stateless deployment cannot call back into the client, so it returns a code instead of asking."""
    asker = Asker("accept")
    async with connect(settings_for(sandbox, stateless=True), elicitation_callback=asker) as client:
        token = await new_token(client)
        result = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
    assert result["status"] == "confirmation_required" and result["confirmation_code"]
    assert asker.messages == []
    assert token_count(sandbox) == 1


# --- the two-step fallback -------------------------------------------------------------------


async def test_the_first_call_changes_nothing_and_returns_a_code(sandbox: RunningSandbox) -> None:
    """Without elicitation the first revoke is a preview: a one-time code, its lifetime, and no change."""
    async with connect(settings_for(sandbox)) as client:
        token = await new_token(client, name="precious")
        preview = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
        again = ok(await client.call_tool("get_credential", {"kind": "token", "id": token["id"]}))
    assert preview["status"] == "confirmation_required"
    assert preview["confirmation_code"] and preview["expires_in_seconds"] == 300
    assert "precious" in preview["message"] and "confirm" in preview["message"]
    assert again["token"]["name"] == "precious"
    assert token_count(sandbox) == 1


@pytest.mark.parametrize(
    "bad_code",
    [
        pytest.param("not-a-code", id="garbage"),
        pytest.param("9999999999.abcdef012345.AAAAAAAAAAAAAAAAAAAA", id="forged"),
        pytest.param("", id="empty"),
    ],
)
async def test_a_wrong_code_is_refused_and_nothing_is_deleted(sandbox: RunningSandbox, bad_code: str) -> None:
    """A code the server did not issue is an error naming confirm; the credential stays."""
    async with connect(settings_for(sandbox)) as client:
        token = await new_token(client)
        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
        text = error_text(
            await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"], "confirm": bad_code})
        )
    assert "confirm" in text
    assert token_count(sandbox) == 1


async def test_a_code_for_another_credential_is_refused(sandbox: RunningSandbox) -> None:
    """A code is bound to one id: it cannot revoke a different token."""
    async with connect(settings_for(sandbox)) as client:
        first, second = await new_token(client), await new_token(client)
        code = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": first["id"]}))[
            "confirmation_code"
        ]
        text = error_text(
            await client.call_tool("revoke_credential", {"kind": "token", "id": second["id"], "confirm": code})
        )
    assert "confirm" in text and "not issued for this operation" in text
    assert token_count(sandbox) == 2


async def test_a_revoke_code_does_not_confirm_an_update(sandbox: RunningSandbox) -> None:
    """A code is bound to its tool and change: a revoke code cannot approve an update that removes access."""
    async with connect(settings_for(sandbox)) as client:
        token = await new_token(client, apis=["sql", "maps"], grants=[grant("*")])
        code = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))[
            "confirmation_code"
        ]
        change = {"kind": "token", "id": token["id"], "apis": ["maps"], "confirm": code}
        text = error_text(await client.call_tool("update_credential", change))
        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": token["id"]}))
    assert "confirm" in text
    assert got["token"]["apis"] == ["sql", "maps"]


async def test_a_code_for_a_different_change_is_refused(sandbox: RunningSandbox) -> None:
    """An update code approves exactly the change previewed, not a broader one."""
    async with connect(settings_for(sandbox)) as client:
        token = await new_token(client, apis=["sql", "maps"], grants=[grant("*")])
        previewed = {"kind": "token", "id": token["id"], "apis": ["maps"]}
        code = ok(await client.call_tool("update_credential", previewed))["confirmation_code"]
        broader = {"kind": "token", "id": token["id"], "apis": ["maps"], "grants": [grant("carto.a.b")]}
        text = error_text(await client.call_tool("update_credential", {**broader, "confirm": code}))
        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": token["id"]}))
    assert "confirm" in text
    assert got["token"]["apis"] == ["sql", "maps"] and got["token"]["grants"][0]["source"] == "*"


async def test_an_expired_code_is_refused(sandbox: RunningSandbox) -> None:
    """A code past its lifetime (confirm_ttl) is refused with a message saying so; nothing is deleted."""
    async with connect(settings_for(sandbox, confirm_ttl=0)) as client:
        token = await new_token(client)
        code = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))[
            "confirmation_code"
        ]
        text = error_text(
            await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"], "confirm": code})
        )
    assert "expired" in text
    assert token_count(sandbox) == 1


def test_a_confirmer_accepts_a_code_until_it_expires_and_only_once() -> None:
    """Confirmer with an injected clock: valid before its expiry, refused after, and never twice."""
    confirmer = Confirmer(b"k" * 32, ttl=60)
    op = Operation("revoke_credential", "default", "token", "abcd1234")
    code = confirmer.issue(op, now=1_000_000.0)
    with pytest.raises(InputError, match="expired"):
        confirmer.check(op, code, now=1_000_061.0)
    confirmer.check(op, code, now=1_000_059.0)
    with pytest.raises(InputError, match="already used"):
        confirmer.check(op, code, now=1_000_059.5)
    other = Confirmer(b"x" * 32, ttl=60)
    with pytest.raises(InputError, match="not issued"):
        other.check(op, confirmer.issue(op, now=1_000_000.0), now=1_000_001.0)


async def test_a_used_code_is_not_replayable_on_the_same_server(sandbox: RunningSandbox) -> None:
    """After a code confirmed a change, the same code for the same change again is refused."""
    async with connect(settings_for(sandbox)) as client:
        token = await new_token(client, apis=["sql", "maps"], grants=[grant("*")])
        narrow = {"kind": "token", "id": token["id"], "apis": ["maps"]}
        code = ok(await client.call_tool("update_credential", narrow))["confirmation_code"]
        assert ok(await client.call_tool("update_credential", {**narrow, "confirm": code}))["status"] == "updated"
        widened = ok(await client.call_tool("update_credential", {**narrow, "apis": ["sql", "maps"]}))
        assert widened["status"] == "updated"
        text = error_text(await client.call_tool("update_credential", {**narrow, "confirm": code}))
        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": token["id"]}))
    assert "already used" in text
    assert got["token"]["apis"] == ["sql", "maps"]


async def test_a_code_signed_with_a_shared_key_verifies_on_another_instance(sandbox: RunningSandbox) -> None:
    """Replicas sharing confirm_key accept each other's codes; one with another key does not."""
    key = b"shared-confirmation-key-for-tests"
    first = server_for(settings_for(sandbox, confirm_key=key))
    second = server_for(settings_for(sandbox, confirm_key=key))
    stranger = server_for(settings_for(sandbox, confirm_key=b"another-key-entirely-different"))
    async with connect(first) as one, connect(second) as two, connect(stranger) as three:
        token = await new_token(one)
        args = {"kind": "token", "id": token["id"]}
        code = ok(await one.call_tool("revoke_credential", args))["confirmation_code"]
        assert "confirm" in error_text(await three.call_tool("revoke_credential", {**args, "confirm": code}))
        assert token_count(sandbox) == 1
        done = ok(await two.call_tool("revoke_credential", {**args, "confirm": code}))
    assert done["status"] == "revoked"
    assert token_count(sandbox) == 0


async def test_a_code_used_on_one_replica_is_not_replayable_there(sandbox: RunningSandbox) -> None:
    """A shared-key code used on the second instance is remembered there and refused on a replay."""
    key = b"shared-confirmation-key-for-tests"
    async with (
        connect(settings_for(sandbox, confirm_key=key)) as one,
        connect(settings_for(sandbox, confirm_key=key)) as two,
    ):
        token = await new_token(one, apis=["sql", "maps"], grants=[grant("*")])
        narrow = {"kind": "token", "id": token["id"], "apis": ["maps"]}
        code = ok(await one.call_tool("update_credential", narrow))["confirmation_code"]
        assert ok(await two.call_tool("update_credential", {**narrow, "confirm": code}))["status"] == "updated"
        ok(await two.call_tool("update_credential", {**narrow, "apis": ["sql", "maps"]}))
        text = error_text(await two.call_tool("update_credential", {**narrow, "confirm": code}))
    assert "already used" in text
    assert sandbox.store.get_token(token["token"])["allowed_apis"] == ["sql", "maps"]  # type: ignore[index]
