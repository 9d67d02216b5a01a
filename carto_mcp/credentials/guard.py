"""The active policy, for one profile: checked before any request reaches CARTO.

Every create, update, rotate and revoke asks here first. A rule at `deny` refuses the
request with every rule it breaks and what would pass (one correction, not one per try);
a rule at `warn` lets it through and says so in the result. Hourly limits are counted here,
in this server process: a request counts when it is sent, since a create whose answer was
lost may still have happened. With no policy, every check passes and nothing is counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

from carto_mcp.errors import PolicyRefused
from carto_mcp.models.policy import Section, TokenFacts, Violation, client_violations, token_violations
from carto_mcp.models.results import utcnow

__all__ = ["Guard"]

_HOUR = 3600.0
_FIX = (
    "change the request so every rule passes (dry_run=true lists them all; carto://policy has the rules). "
    "The policy itself cannot be changed through a tool"
)


class Guard:
    """One profile's rules and hourly counts."""

    def __init__(
        self, section: Section | None, where: str = "", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`where` names the policy file in refusals; `clock` is injectable so tests need not wait an hour."""
        self.section = section
        self.where = where
        self._clock = clock
        self._created: deque[float] = deque()
        self._revoked: deque[float] = deque()

    # --- what a request breaks -------------------------------------------------------------------

    def token_violations(
        self, token: TokenFacts, *, now: datetime | None = None, expiry: bool = True
    ) -> list[Violation]:
        if self.section is None:
            return []
        return token_violations(self.section.tokens, token, now=now or utcnow(), check_expiry=expiry)

    def client_violations(self, kind: str, urls: Iterable[tuple[str, str]], *, creating: bool) -> list[Violation]:
        if self.section is None:
            return []
        found = client_violations(self.section.oauth, kind, urls)
        if not creating:  # allow_spa / allow_m2m are about creating one
            found = [v for v in found if v.rule not in ("oauth.allow_spa", "oauth.allow_m2m")]
        return found

    def enforce(self, violations: list[Violation], what: str) -> list[str]:
        """Refuse when a `deny` rule is broken; otherwise the warnings to return with the result."""
        denied = [v for v in violations if v.level == "deny"]
        if denied:
            raise PolicyRefused(
                f"Refused by the policy{self._in()}: this {what} breaks "
                f"{len(denied)} rule{'s' if len(denied) > 1 else ''}: " + "; ".join(v.text() for v in denied),
                rules=tuple(v.rule for v in denied),
                fix=_FIX,
            )
        return [f"policy warning: {v.text()}" for v in violations]

    # --- hourly limits --------------------------------------------------------------------------

    def count_creation(self) -> list[str]:
        """Count a create about to be sent, or refuse it when this hour's allowance is spent; any warnings."""
        limit = self.section.limits.creations_per_hour if self.section else None
        return self._count(self._created, limit, "limits.creations_per_hour", "creation")

    def count_revocation(self) -> list[str]:
        limit = self.section.limits.revocations_per_hour if self.section else None
        return self._count(self._revoked, limit, "limits.revocations_per_hour", "revocation")

    def _count(self, sent: deque[float], limit: int | None, rule: str, what: str) -> list[str]:
        if limit is None or self.section is None:
            return []
        now = self._clock()
        while sent and now - sent[0] >= _HOUR:
            sent.popleft()
        warnings: list[str] = []
        if len(sent) >= limit:
            wait = max(1, int(_HOUR - (now - sent[0]) + 0.999) // 60)
            message = f"{rule}: {len(sent)} {what}s in the last hour reach the limit of {limit}"
            if self.section.limits.level(rule.split(".")[1]) == "deny":
                raise PolicyRefused(
                    f"Refused by the policy{self._in()}: {message}",
                    rules=(rule,),
                    fix=f"try again in about {wait} minute{'s' if wait > 1 else ''}, or ask a person",
                )
            warnings.append(f"policy warning: {message}")
        sent.append(now)
        return warnings

    def _in(self) -> str:
        return f" in {self.where}" if self.where else ""

    def __repr__(self) -> str:
        return f"Guard({'no policy' if self.section is None else self.where or 'policy'})"
