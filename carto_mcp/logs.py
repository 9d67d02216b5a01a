"""Logging: everything to stderr, through one formatter that masks anything token-shaped.

stdout belongs to the protocol on stdio and to results for `call`. `--debug` opens carto-mcp's
own loggers (which mask every bearer and token path themselves) and nothing else: the SDK's
and the web server's loggers stay at WARNING, because at DEBUG they print whole protocol
messages, and a create's reply holds the new secret. The formatter masks JWT-shaped values and
the ids of reveal pages (uvicorn's access lines name request paths) in every line as a last
guard, whoever wrote it.
"""

from __future__ import annotations

import logging
import sys

from carto_mcp.masking import hide_reveal_ids, redact

__all__ = ["RedactingFormatter", "configure", "quiet_url_loggers"]

#: Loggers that name request URLs at INFO (a token's URL holds the token itself).
_URL_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore")


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback alike) never holds a JWT or a reveal page's id."""

    def format(self, record: logging.LogRecord) -> str:
        return hide_reveal_ids(redact(super().format(record), tokens_only=True))


def configure(debug: bool) -> None:
    """One stderr handler on the root logger; carto-mcp's loggers at DEBUG with --debug, others at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("carto-mcp %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    own = logging.getLogger("carto_mcp")
    own.handlers[:] = []
    own.propagate = True
    own.setLevel(logging.DEBUG if debug else logging.INFO)
    quiet_url_loggers()


def quiet_url_loggers() -> None:
    """httpx2 logs every request URL at INFO, and a token's URL holds the token itself: never below WARNING.

    Done by `build_server` too, so a server embedded in another program (or a test) is as quiet.
    """
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
