"""Where a new secret goes: a one-time reveal page, a 0600 file, or (last) the tool result.

A tool result goes into the model's context, the host's transcript and often a vendor's
logs, so the result is the last place a secret should go. The mode is chosen before the
create (`choose`), so a setting that cannot be honoured refuses while nothing exists yet;
after the create the chosen sink delivers, and if that fails the value is returned in the
result with a warning instead of being lost: a credential that exists and was never shown
is a credential lost.

- `reveal`: the secret waits in memory on a one-time page (`RevealStore`) and the person is
  asked, through URL-mode elicitation, to open it. The result never holds the value; when
  the person declines, it holds the page's URL, which still answers once until it expires.
- `file`: `NAME=value` lines in a 0600 file, a named `secret_output_file` or one file per
  credential under the secrets dir. The result names the file, never the value.
- `inline`: the value in the result, with a warning that it is now in the conversation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, Protocol

from carto_mcp.config import SecretMode
from carto_mcp.credentials.reveal import RevealStore, SecretPage
from carto_mcp.credentials.secrets import SecretFile
from carto_mcp.errors import InputError, SettingError
from carto_mcp.masking import REVEAL_PREFIX

__all__ = [
    "INLINE_WARNING",
    "AskUrl",
    "Delivered",
    "FileSink",
    "InlineSink",
    "RevealSink",
    "SecretSink",
    "SecretsDir",
    "choose",
    "reveal_unavailable",
]

#: What the person answered when asked to open a reveal page ("failed": the question never reached them).
Answer = Literal["accept", "decline", "cancel", "failed"]
#: Asks the person to open a URL (message, url, elicitation id) and says what they answered.
AskUrl = Callable[[str, str, str], Awaitable[Answer]]

INLINE_WARNING = (
    "The secret is in this result, so it is now in the conversation (the model's context and the host's "
    "transcript). Store it and clear it from the chat; next time start the server with --secrets-dir DIR "
    "(or use a client that supports URL elicitation) to keep secrets out of the conversation."
)


@dataclass(frozen=True)
class Delivered:
    """How one secret was delivered; `value_in_result` is the only case the result carries it."""

    mode: SecretMode
    value_in_result: bool = False
    file: Path | None = None
    variables: tuple[str, ...] = ()
    #: The page's URL, given only when the person did not open it from the question (it answers once).
    reveal_url: str | None = None
    reveal_expires_at: str | None = None
    warnings: tuple[str, ...] = ()


class SecretSink(Protocol):
    """Where one create's secret goes; every sink reports how it went, and none may lose the value."""

    async def deliver(self, page: SecretPage, name: str) -> Delivered:
        """Deliver `page`'s values for the credential `name` (a file stem like `token-tok_ab12`)."""
        ...


@dataclass(frozen=True)
class InlineSink:
    """The tool result: the last resort, and always with a warning."""

    async def deliver(self, page: SecretPage, name: str) -> Delivered:
        return Delivered("inline", value_in_result=True, warnings=(INLINE_WARNING,))


@dataclass(frozen=True)
class FileSink:
    """A file the caller named (`secret_output_file`), already checked."""

    target: SecretFile

    async def deliver(self, page: SecretPage, name: str) -> Delivered:
        return await _write(self.target, page)


@dataclass(frozen=True)
class SecretsDir:
    """One file per credential under the configured secrets dir (`--secrets-dir`)."""

    directory: Path
    variables: tuple[str, ...]
    protected: tuple[Path, ...] = ()

    def check(self) -> SecretsDir:
        """Refuse, before the create, a dir that is not there or cannot be written."""
        if not self.directory.is_dir():
            raise InputError(
                f"secrets: the secrets dir {self.directory} is not a directory. Nothing was created.",
                field="secrets",
                fix="create it (mode 0700) or point --secrets-dir elsewhere",
            )
        SecretFile.check(str(self.directory / "carto-mcp-check.env"), self.variables, protected=self.protected)
        return self

    async def deliver(self, page: SecretPage, name: str) -> Delivered:
        path = self.directory / f"{name}.env"
        for n in range(2, 100):
            if not path.exists():
                break
            path = self.directory / f"{name}-{n}.env"
        try:
            target = SecretFile.check(str(path), self.variables, protected=self.protected)
        except InputError:
            return _fallback(page)
        return await _write(target, page)


@dataclass(frozen=True)
class RevealSink:
    """A one-time page at `base_url`/reveal/<id>, and a URL-mode elicitation asking the person to open it."""

    store: RevealStore
    base_url: str
    ask: AskUrl
    notes: tuple[str, ...] = ()

    async def deliver(self, page: SecretPage, name: str) -> Delivered:
        reveal = self.store.put(page)
        url = f"{self.base_url.rstrip('/')}{REVEAL_PREFIX}{reveal.ident}"
        until = datetime.now(timezone.utc) + timedelta(seconds=reveal.expires_in)
        expires = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        minutes = max(1, round(reveal.expires_in / 60))
        message = (
            f"{page.title} was created. Open this one-time page to see its secret and copy it: it opens once, "
            f"within {minutes} minute{'s' if minutes != 1 else ''}, and never passes through the chat."
        )
        answer = await self.ask(message, url, reveal.ident)
        opened = answer == "accept"  # otherwise the result names the page, which still answers once
        return Delivered("reveal", reveal_url=None if opened else url, reveal_expires_at=expires, warnings=self.notes)


async def _write(target: SecretFile, page: SecretPage) -> Delivered:
    saved = await target.deliver([value for _, value in page.values])
    if saved is None:
        return _fallback(page)
    return Delivered("file", file=saved, variables=target.variables)


def _fallback(page: SecretPage) -> Delivered:
    return Delivered(
        "inline",
        value_in_result=True,
        warnings=("Could not write the secret file; the secret is returned here instead.", INLINE_WARNING),
    )


def reveal_unavailable(why: str) -> SettingError:
    """The refusal of `--secrets reveal` when it cannot be honoured and no secrets dir is set."""
    return SettingError(
        f"This server is set to --secrets reveal, but {why}, and no --secrets-dir is set to fall back "
        "on. Nothing was created.",
        field="secrets",
        fix="start the server with --secrets-dir DIR (secrets go to 0600 files there), or with --secrets inline "
        "to accept the secret in the result, or pass secret_output_file for this call",
    )


def choose(setting: SecretMode | None, *, reveal_possible: str | None, secrets_dir: Path | None) -> SecretMode:
    """The delivery mode of one create, decided before it is sent (a file the caller named is not asked here).

    `reveal_possible` is None when a reveal page can be offered, else why not. The setting
    wins (`reveal` falls back to the secrets dir and refuses without one, never becoming
    inline); with no setting: reveal, else the dir, else inline.
    """
    if setting == "inline":
        return "inline"
    if setting == "file":
        return "file"
    if reveal_possible is None:
        return "reveal"
    if secrets_dir is not None:
        return "file"
    if setting == "reveal":
        raise reveal_unavailable(reveal_possible)
    return "inline"
