"""The sandbox's state: tokens and OAuth clients in one sqlite file.

sqlite because the sandbox must survive restarts and be shared safely: several servers,
threads and processes may write to one file at once (tests and benchmarks do). WAL mode, a
busy timeout and `BEGIN IMMEDIATE` write transactions keep that safe; one connection per
store, guarded by a lock, keeps it simple. Rows hold the wire objects as JSON, so what comes
back out is exactly what the API sent.

Secrets are minted here and never logged: token values are HS256 JWTs signed with a random
key kept in the database; M2M client secrets are stored only as a SHA-256 digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carto_mcp import contract
from carto_mcp.errors import InputError
from carto_mcp.files import user_data_dir
from carto_mcp.masking import jwt_payload
from carto_mcp.models.rules import format_expiry, parse_timestamp

__all__ = ["DEFAULT_OWNER", "MEMORY", "SandboxStore", "default_db_path", "now_iso"]

#: What a store without a file reports as its path.
MEMORY = ":memory:"

#: Who owns a token (contract: the list shows the caller's own tokens only). The sandbox has
#: one human user: every bearer it did not mint for an M2M client acts as this user, so a
#: `carto auth login` token, `--token x` and the seeded tokens all share one account.
DEFAULT_OWNER = "user"

#: Wire names of a token body (contract D), unpacked once so the rest of the sandbox reads well.
NAME, GRANTS, ALLOWED_APIS, REFERERS, EXPIRATION_DATE = contract.TOKEN_FIELDS
#: (A) Fields of a stored token / OAuth client object that are not request fields.
TOKEN_VALUE = "token"
CREATED_AT = "created_at"

_ALPHANUMERIC = string.ascii_letters + string.digits
_SECRET_ALPHABET = _ALPHANUMERIC + "-_"
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    jti TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'user'
);
CREATE TABLE IF NOT EXISTS oauth_clients (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE,
    app_type TEXT NOT NULL,
    secret_sha256 TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_clients_by_type ON oauth_clients (app_type, seq);
"""


def _add_owner_column(conn: sqlite3.Connection) -> None:
    """Databases written before tokens had owners get the column; their tokens belong to the user."""
    columns = {name for (_, name, *_) in conn.execute("PRAGMA table_info(tokens)")}
    if "owner" not in columns:
        conn.execute(f"ALTER TABLE tokens ADD COLUMN owner TEXT NOT NULL DEFAULT '{DEFAULT_OWNER}'")
    conn.execute("CREATE INDEX IF NOT EXISTS tokens_by_owner ON tokens (owner, seq)")


def default_db_path(environ: Mapping[str, str] | None = None, *, platform: str | None = None) -> Path:
    """Where `carto-mcp sandbox` keeps its state between runs (the directory is not created here):
    `carto-mcp/sandbox.sqlite3` under the per-user data directory (`carto_mcp.files.user_data_dir`)."""
    return user_data_dir(environ, platform=platform) / "carto-mcp" / "sandbox.sqlite3"


def now_iso() -> str:
    """The wire form of a timestamp (contract A: ISO 8601 UTC with a Z)."""
    return format_expiry(datetime.now(timezone.utc))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


#: One reusable compact encoder: json.dumps with options builds a new one per call (slow when seeding).
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _random_string(length: int, alphabet: str = _ALPHANUMERIC) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


_JWT_HEADER = _b64(_json({"alg": "HS256", "typ": "JWT"}).encode())


class SandboxStore:
    """Tokens and OAuth clients in sqlite; `path=None` keeps them in memory until `close()`.

    Safe to share between threads. Opened on construction and reopened lazily after
    `close()`, so it works whether or not anything runs the ASGI lifespan.
    """

    def __init__(self, path: str | Path | None = None, *, org_id: str = "ac_sandbox", token_ids: bool = False) -> None:
        self.path: Path | None = None if path is None or str(path) == MEMORY else Path(path).expanduser()
        self.org_id = org_id
        #: Whether token objects carry an `id` of their own (`tok_<jti>`), as the CARTO CLI shows them.
        self.token_ids = token_ids
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._key = b""
        self._connection()

    def __repr__(self) -> str:
        return f"SandboxStore(path={str(self.path or MEMORY)!r}, org_id={self.org_id!r})"

    # --- connection and transactions ---------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def _open(self) -> sqlite3.Connection:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = str(self.path) if self.path is not None else MEMORY
        try:
            conn = sqlite3.connect(
                target, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise InputError(f"the sandbox database {target} cannot be opened ({exc})", field="sandbox_db") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if self.path is not None:
                self._enable_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                _add_owner_column(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('jwt_key', ?)",
                    (secrets.token_hex(32),),
                )
                (key,) = conn.execute("SELECT value FROM meta WHERE key = 'jwt_key'").fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise InputError(
                f"the sandbox database {target} cannot be used ({exc})",
                field="sandbox_db",
                fix="name a new file, or one the sandbox made",
            ) from None
        except BaseException:
            conn.close()
            raise
        self._key = bytes.fromhex(key)
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> None:
        """Switching to WAL needs a brief exclusive lock; a racing opener may hold it, so retry."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def close(self) -> None:
        """Close the connection (idempotent); the next call reopens it. An in-memory store starts empty."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot; writers take the write lock up front (`BEGIN IMMEDIATE`)."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def clear(self) -> None:
        """Delete every token and OAuth client (the signing key stays): a fresh start between runs."""
        with self._transaction(write=True) as conn:
            conn.execute("DELETE FROM tokens")
            conn.execute("DELETE FROM oauth_clients")

    # --- minting -------------------------------------------------------------------------

    def _signature(self, header: str, body: str) -> str:
        return _b64(hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest())

    def _sign(self, payload: Mapping[str, Any]) -> str:
        body = _b64(_json(payload).encode())
        return f"{_JWT_HEADER}.{body}.{self._signature(_JWT_HEADER, body)}"

    def _mint_token(self, jti: str) -> str:
        """(A) An API Access Token: HS256 JWT whose payload is {"a": org id, "jti": 8 hex}."""
        return self._sign({"a": self.org_id, "jti": jti})

    def mint_access_token(self, client_id: str, *, audience: str, lifetime: int) -> str:
        """A JWT-shaped OAuth access token, as the M2M exchange returns."""
        issued = int(time.time())
        return self._sign(
            {
                "a": self.org_id,
                "sub": f"{client_id}@clients",
                "aud": audience,
                "iat": issued,
                "exp": issued + lifetime,
                "jti": secrets.token_hex(8),
            }
        )

    def caller(self, bearer: str) -> str:
        """Who a bearer acts for: the M2M client an access token minted here names, else the user.

        Only a signature this store made counts, so a hand-made JWT with a `sub` is still the user.
        """
        header, _, rest = bearer.partition(".")
        body, _, signature = rest.partition(".")
        if header != _JWT_HEADER or not body or not signature:
            return DEFAULT_OWNER
        expected = self._signature(header, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):  # bytes: a bearer may be non-ASCII
            return DEFAULT_OWNER
        payload = jwt_payload(bearer)  # verified just above, so its `sub` may decide who is asking
        subject = payload.get("sub") if payload else None
        return subject if isinstance(subject, str) and subject else DEFAULT_OWNER

    # --- tokens --------------------------------------------------------------------------

    def create_token(self, fields: Mapping[str, Any], *, owner: str = DEFAULT_OWNER) -> dict[str, Any]:
        """Store a validated token body for `owner`; return the full token object (value included)."""
        with self._transaction(write=True) as conn:
            while True:
                jti = secrets.token_hex(4)
                if conn.execute("SELECT 1 FROM tokens WHERE jti = ?", (jti,)).fetchone() is None:
                    break
            token = self._mint_token(jti)
            obj = self._token_object(token, jti, fields, now_iso())
            conn.execute(
                "INSERT INTO tokens (token, jti, body, owner) VALUES (?, ?, ?, ?)", (token, jti, _json(obj), owner)
            )
        return obj

    def _token_object(self, token: str, jti: str, fields: Mapping[str, Any], created_at: str) -> dict[str, Any]:
        return {
            **({contract.TOKEN_ID: f"{contract.TOKEN_ID_PREFIX}{jti}"} if self.token_ids else {}),
            TOKEN_VALUE: token,
            NAME: fields.get(NAME) or f"{contract.GENERATED_NAME_PREFIX}{jti}",
            GRANTS: list(fields.get(GRANTS) or []),
            ALLOWED_APIS: list(fields.get(ALLOWED_APIS) or []),
            REFERERS: list(fields.get(REFERERS) or []),
            EXPIRATION_DATE: fields.get(EXPIRATION_DATE),
            CREATED_AT: created_at,
        }

    def list_tokens(
        self, *, offset: int = 0, limit: int = contract.DEFAULT_PER_PAGE, owner: str = DEFAULT_OWNER
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of `owner`'s tokens in creation order, and their total count."""
        with self._transaction(write=False) as conn:
            (total,) = conn.execute("SELECT count(*) FROM tokens WHERE owner = ?", (owner,)).fetchone()
            rows = conn.execute(
                "SELECT body FROM tokens WHERE owner = ? ORDER BY seq LIMIT ? OFFSET ?", (owner, limit, offset)
            ).fetchall()
        return [json.loads(body) for (body,) in rows], total

    def get_token(self, token: str, *, owner: str = DEFAULT_OWNER) -> dict[str, Any] | None:
        """`owner`'s token with this value; None if unknown or someone else's."""
        with self._transaction(write=False) as conn:
            row = conn.execute("SELECT body FROM tokens WHERE token = ? AND owner = ?", (token, owner)).fetchone()
        return None if row is None else json.loads(row[0])

    def update_token(
        self, token: str, change: Callable[[dict[str, Any]], dict[str, Any]], *, owner: str = DEFAULT_OWNER
    ) -> dict[str, Any] | None:
        """Read, change and write one of `owner`'s tokens atomically; `change` may raise to abort. None if unknown."""
        with self._transaction(write=True) as conn:
            row = conn.execute("SELECT body FROM tokens WHERE token = ? AND owner = ?", (token, owner)).fetchone()
            if row is None:
                return None
            obj = change(json.loads(row[0]))
            conn.execute("UPDATE tokens SET body = ? WHERE token = ?", (_json(obj), token))
        return obj

    def delete_token(self, token: str, *, owner: str = DEFAULT_OWNER) -> bool:
        with self._transaction(write=True) as conn:
            return conn.execute("DELETE FROM tokens WHERE token = ? AND owner = ?", (token, owner)).rowcount > 0

    def seed_tokens(
        self,
        count: int,
        *,
        name_prefix: str = "seed",
        expiration_dates: Sequence[str | None] | None = None,
        owner: str = DEFAULT_OWNER,
    ) -> list[str]:
        """Bulk-insert `count` Maps tokens in one transaction (for benchmarks); returns their values.

        Token i expires at `expiration_dates[i % len(expiration_dates)]` (any parseable date, past
        ones included, stored in wire form); without the list no token expires.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        expiries: list[str | None] = [None]
        if expiration_dates:
            expiries = []
            for value in expiration_dates:
                when = None if value is None else parse_timestamp(value)
                if value is not None and when is None:
                    raise ValueError(f"expiration date {value!r} is not an ISO date or datetime")
                expiries.append(None if when is None else format_expiry(when))
        seed_grant = [{contract.GRANT_CONNECTION: "carto_dw", contract.GRANT_SOURCE: "carto.shared.seed_table"}]
        created = now_iso()
        rows: list[tuple[str, str, str, str]] = []
        with self._transaction(write=True) as conn:
            taken = {jti for (jti,) in conn.execute("SELECT jti FROM tokens")}
            for i in range(count):
                jti = secrets.token_hex(4)
                while jti in taken:
                    jti = secrets.token_hex(4)
                taken.add(jti)
                token = self._mint_token(jti)
                fields = {
                    NAME: f"{name_prefix}-{i:05d}",
                    GRANTS: seed_grant,
                    ALLOWED_APIS: ["maps"],
                    EXPIRATION_DATE: expiries[i % len(expiries)],
                }
                rows.append((token, jti, _json(self._token_object(token, jti, fields, created)), owner))
            conn.executemany("INSERT INTO tokens (token, jti, body, owner) VALUES (?, ?, ?, ?)", rows)
        return [token for token, *_ in rows]

    # --- OAuth clients -------------------------------------------------------------------

    def create_client(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Store a validated client body; the reply holds `client_secret` for M2M (the only time)."""
        app_type = fields[contract.OAUTH_APP_TYPE]
        secret = _random_string(64, _SECRET_ALPHABET) if app_type == "m2m" else None
        with self._transaction(write=True) as conn:
            while True:
                client_id = _random_string(32)
                if conn.execute("SELECT 1 FROM oauth_clients WHERE client_id = ?", (client_id,)).fetchone() is None:
                    break
            obj = {contract.OAUTH_CLIENT_ID: client_id, **fields, CREATED_AT: now_iso()}
            conn.execute(
                "INSERT INTO oauth_clients (client_id, app_type, secret_sha256, body) VALUES (?, ?, ?, ?)",
                (client_id, app_type, None if secret is None else _digest(secret), _json(obj)),
            )
        return obj if secret is None else {**obj, contract.OAUTH_CLIENT_SECRET: secret}

    def list_clients(
        self, *, app_type: str | None = None, offset: int = 0, limit: int = contract.DEFAULT_PER_PAGE
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of clients (optionally one kind) in creation order, and the total count."""
        where, args = ("WHERE app_type = ?", (app_type,)) if app_type else ("", ())
        with self._transaction(write=False) as conn:
            (total,) = conn.execute(f"SELECT count(*) FROM oauth_clients {where}", args).fetchone()
            rows = conn.execute(
                f"SELECT body FROM oauth_clients {where} ORDER BY seq LIMIT ? OFFSET ?", (*args, limit, offset)
            ).fetchall()
        return [json.loads(body) for (body,) in rows], total

    def get_client(self, client_id: str) -> dict[str, Any] | None:
        with self._transaction(write=False) as conn:
            row = conn.execute("SELECT body FROM oauth_clients WHERE client_id = ?", (client_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def update_client(
        self, client_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Read, change and write one client atomically; `change` may raise to abort. None if unknown."""
        with self._transaction(write=True) as conn:
            row = conn.execute("SELECT body FROM oauth_clients WHERE client_id = ?", (client_id,)).fetchone()
            if row is None:
                return None
            obj = change(json.loads(row[0]))
            conn.execute("UPDATE oauth_clients SET body = ? WHERE client_id = ?", (_json(obj), client_id))
        return obj

    def delete_client(self, client_id: str) -> bool:
        with self._transaction(write=True) as conn:
            return conn.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,)).rowcount > 0

    def check_client_secret(self, client_id: str, secret: str) -> bool:
        """True when `client_id` is an M2M client whose secret is `secret` (constant-time compare)."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT secret_sha256 FROM oauth_clients WHERE client_id = ? AND app_type = 'm2m'", (client_id,)
            ).fetchone()
        return row is not None and bool(row[0]) and hmac.compare_digest(row[0], _digest(secret))
