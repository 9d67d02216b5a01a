"""The sandbox API in a process of its own, for benchmarks that must not share a GIL with it.

    python -m benchmarks.sandbox_server --db PATH --seed N [--spread mixed|rare] [--latency-ms MS]

Seeds N tokens (expiries spread so `expiring_within="7d"` matches 2 in 7, or with `rare` 1 in
500, so answering it means reading every page), then serves the sandbox with the `/_sandbox/`
test routes (request counter) on a free loopback port, each request `--latency-ms` late, and
prints `CARTO sandbox API on http://127.0.0.1:PORT (db: PATH)` once bound.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: Offsets (days from now) of the seeded expiries; None never expires. Two of seven are within 7 days.
EXPIRY_OFFSETS: tuple[int | None, ...] = (-3, 2, 5, 10, 40, 400, None)
#: The `rare` spread: one token in 500 expires within 7 days (the last of each 500), the rest later or never.
RARE_OFFSETS: tuple[int | None, ...] = (*((400, None) * 249), 40, 3)
SPREADS = {"mixed": EXPIRY_OFFSETS, "rare": RARE_OFFSETS}


def expiry_spread(now: datetime | None = None, offsets: tuple[int | None, ...] = EXPIRY_OFFSETS) -> list[str | None]:
    now = now or datetime.now(timezone.utc)
    return [None if d is None else (now + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in offsets]


def seed(db: Path, count: int, spread: str = "mixed") -> None:
    from carto_mcp.sandbox.store import SandboxStore

    store = SandboxStore(db)
    try:
        store.seed_tokens(count, expiration_dates=expiry_spread(offsets=SPREADS[spread]))
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", choices=sorted(SPREADS), default="mixed")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    if args.seed:
        seed(args.db, args.seed, args.spread)
    from carto_mcp.sandbox.server import serve

    serve(host="127.0.0.1", port=0, db_path=args.db, faults=True, latency_ms=args.latency_ms)


if __name__ == "__main__":
    main()
