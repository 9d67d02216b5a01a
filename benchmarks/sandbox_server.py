"""The sandbox API in a process of its own, for benchmarks that must not share a GIL with it.

    python -m benchmarks.sandbox_server --db PATH --seed N

Seeds N tokens (expiries spread so `expiring_within="7d"` matches 2 in 7), then serves the
sandbox with the `/_sandbox/` test routes (request counter) on a free loopback port and prints
`CARTO sandbox API on http://127.0.0.1:PORT (db: PATH)` once bound.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: Offsets (days from now) of the seeded expiries; None never expires. Two of seven are within 7 days.
EXPIRY_OFFSETS: tuple[int | None, ...] = (-3, 2, 5, 10, 40, 400, None)


def expiry_spread(now: datetime | None = None) -> list[str | None]:
    now = now or datetime.now(timezone.utc)
    return [None if d is None else (now + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in EXPIRY_OFFSETS]


def seed(db: Path, count: int) -> None:
    from carto_mcp.sandbox.store import SandboxStore

    store = SandboxStore(db)
    try:
        store.seed_tokens(count, expiration_dates=expiry_spread())
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.seed:
        seed(args.db, args.seed)
    from carto_mcp.sandbox.server import serve

    serve(host="127.0.0.1", port=0, db_path=args.db, faults=True)


if __name__ == "__main__":
    main()
