"""The resolver one server holds: the precedence table walked on demand, cached per file state.

A server asks for its profile on every call, and `carto auth login` may rewrite the file at
any time; so a result is kept only while both files' (mtime, size) and the relevant
variables are unchanged, and `refresh` forgets it outright (after a 401: the login may have
been renewed without changing the signature).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from carto_mcp.errors import ProfileError
from carto_mcp.profiles.credentials_file import default_credentials_path, default_legacy_path
from carto_mcp.profiles.sources import SOURCES, Attempt, Lookup, named_profile, resolve_first
from carto_mcp.profiles.types import RESOLVER_ENV_VARS, ProfileInputs, ResolvedProfile, SourceReport

__all__ = ["ProfileResolver", "resolve_profile"]


class ProfileResolver:
    """Resolves the profile for one server; cheap to call again: the result is cached per file state."""

    def __init__(
        self,
        inputs: ProfileInputs = ProfileInputs(),
        *,
        environ: Mapping[str, str] | None = None,
        credentials_path: Path | None = None,
        legacy_path: Path | None = None,
    ) -> None:
        self._lookup = Lookup(
            inputs=inputs,
            environ=os.environ if environ is None else environ,
            credentials_path=Path(credentials_path) if credentials_path else default_credentials_path(environ),
            legacy_path=Path(legacy_path) if legacy_path else default_legacy_path(environ),
        )
        self._cache: dict[object, tuple[object, ResolvedProfile]] = {}
        self._lock = threading.Lock()

    @property
    def credentials_path(self) -> Path:
        """The credentials file this resolver reads."""
        return self._lookup.credentials_path

    @property
    def legacy_path(self) -> Path:
        """The legacy config file this resolver reads."""
        return self._lookup.legacy_path

    def resolve(self) -> ResolvedProfile:
        """The winning profile; re-read when either file or a relevant env var changed."""
        return self._cached("main", lambda: resolve_first(self._lookup, Attempt(migrate=True)))

    def refresh(self) -> ResolvedProfile:
        """Forget every cached result and resolve again (after a 401: the login may have been renewed)."""
        with self._lock:
            self._cache.clear()
        return self.resolve()

    def profile_names(self) -> list[str]:
        """Profile names in the credentials file, in file order ([] when there is no file)."""
        state = self._lookup.load_credentials(migrate=False)
        return list(state.profiles) if state else []

    def resolve_named(self, name: str) -> ResolvedProfile:
        """A specific credentials-file profile, its own token, with the usual base-URL rules."""
        return self._cached(("named", name), lambda: named_profile(self._lookup, name))

    def inspect(self) -> list[SourceReport]:
        """Every source in priority order: whether it is present, whether it won, and why (no secrets)."""
        attempt = Attempt(migrate=False)
        winner: ResolvedProfile | None = None
        error: str | None = None
        try:
            winner = resolve_first(self._lookup, attempt)
        except ProfileError as exc:
            error = str(exc)
        out: list[SourceReport] = []
        for source in SOURCES:
            present, detail = source.report(self._lookup)
            used = winner is not None and winner.source == source.name
            if error and attempt.failed_source == source.name:
                detail = f"found but cannot be used: {error}"
            elif used and winner is not None:
                detail = f"{detail} — used: {winner.reason}"
            out.append(SourceReport(source.name, present, used, detail))
        return out

    def _state_key(self) -> object:
        environ = self._lookup.environ
        return (
            _file_signature(self._lookup.credentials_path),
            _file_signature(self._lookup.legacy_path),
            tuple(environ.get(name) for name in RESOLVER_ENV_VARS),
        )

    def _cached(self, slot: object, compute: Callable[[], ResolvedProfile]) -> ResolvedProfile:
        with self._lock:
            key = self._state_key()
            hit = self._cache.get(slot)
            if hit is not None and hit[0] == key:
                return hit[1]
            result = compute()
            # The key taken *before* reading: a write made meanwhile (or our own migration)
            # changes the signature, so the next call reads the file again.
            self._cache[slot] = (key, result)
            return result


def resolve_profile(
    inputs: ProfileInputs = ProfileInputs(),
    *,
    environ: Mapping[str, str] | None = None,
    credentials_path: Path | None = None,
    legacy_path: Path | None = None,
) -> ResolvedProfile:
    """One-shot resolution: `ProfileResolver(...).resolve()`."""
    return ProfileResolver(
        inputs, environ=environ, credentials_path=credentials_path, legacy_path=legacy_path
    ).resolve()


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
