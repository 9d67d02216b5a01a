"""Shared values and helpers for the API client tests (imported by the test modules and conftest)."""

from __future__ import annotations

from typing import Any

import httpx2

#: The login every test sends; long enough that its mask hides most of it.
LOGIN = "login-bearer-0123456789abcdef-SECRET"
#: A JWT-shaped token value (payload {"a": "ac_x", "jti": "abcd1234"}) for MockTransport tests.
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhIjoiYWNfeCIsImp0aSI6ImFiY2QxMjM0In0.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
TOKEN_ID = "abcd1234"
BASE_URL = "https://gcp-us-east1.api.carto.test"
#: A body the sandbox accepts: a Maps token with one table grant.
MAPS_TOKEN: dict[str, Any] = {
    "name": "demo",
    "grants": [{"connection_name": "carto_dw", "source": "carto.shared.demo_table"}],
    "allowed_apis": ["maps"],
}


def token_object(token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    """A token object as the Tokens API returns it."""
    return {**MAPS_TOKEN, "token": token, "referers": [], "expiration_date": None, **extra}


class Admin:
    """The sandbox's test-only routes: request counters, faults and revoked bearers."""

    def __init__(self, url: str) -> None:
        self._http = httpx2.Client(base_url=url, timeout=5)

    def counts(self) -> dict[str, int]:
        response = self._http.get("/_sandbox/requests")
        response.raise_for_status()
        counts: dict[str, int] = response.json()
        return counts

    def count(self, key: str) -> int:
        return self.counts().get(key, 0)

    def stats(self) -> dict[str, Any]:
        """Request counts, the peak of requests in flight, and how often each list page was served."""
        response = self._http.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def reset(self) -> None:
        self._http.delete("/_sandbox/requests").raise_for_status()

    def fault(self, **fault: Any) -> None:
        self._http.post("/_sandbox/faults", json=fault).raise_for_status()

    def reject(self, bearer: str) -> None:
        self._http.post("/_sandbox/reject-bearer", json={"bearer": bearer}).raise_for_status()

    def close(self) -> None:
        self._http.close()
