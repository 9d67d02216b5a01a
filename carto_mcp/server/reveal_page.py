"""The one-time reveal page as bytes and headers: what the person's browser gets, and nothing else.

The page holds the secret, so it tells every cache not to keep it (`no-store`), sends no
referrer anywhere, may not be framed, and runs only its own inline script and style (a CSP
with a fresh nonce per page, `default-src 'none'`): nothing on it can load or send anything.
"""

from __future__ import annotations

import html
import secrets

from carto_mcp.credentials.reveal import SecretPage

__all__ = ["GONE_TEXT", "UNKNOWN_TEXT", "headers", "render"]

GONE_TEXT = (
    "This page has already been opened, or it expired: a reveal page answers once, and its secret is wiped "
    "from memory after that. If you did not copy the secret, revoke the credential and create a new one."
)
UNKNOWN_TEXT = "There is no reveal page at this address."

_STYLE = """
body{font:16px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;max-width:44rem;margin:2.5rem auto;padding:0 1rem;
color:#1d2733;background:#f6f7f9}
h1{font-size:1.35rem;margin:0 0 .25rem}
.card{background:#fff;border:1px solid #d8dde3;border-radius:10px;padding:1.25rem 1.5rem;margin:1rem 0}
.label{font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;color:#5b6775;margin:.75rem 0 .25rem}
.secret{display:flex;gap:.5rem;align-items:stretch}
code{flex:1;font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f3f6;border-radius:6px;
padding:.55rem .7rem;word-break:break-all}
button{font:inherit;font-size:.9rem;padding:0 1rem;border:0;border-radius:6px;background:#1f6feb;color:#fff;
cursor:pointer}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:.5rem 0 0}
dt{color:#5b6775}dd{margin:0;word-break:break-word}
.warn{color:#8a4b00;font-size:.9rem}
"""

_SCRIPT = """
document.querySelectorAll("button[data-copy]").forEach(function (b) {
  b.addEventListener("click", function () {
    var text = document.getElementById(b.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(function () { b.textContent = "Copied"; });
  });
});
"""


def headers(nonce: str | None = None) -> dict[str, str]:
    """The headers every answer of the reveal route sends (the page's nonce, when it is the page)."""
    own = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Cache-Control": "no-store, max-age=0",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {own}; style-src {own}; "
            "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    }


def render(page: SecretPage) -> tuple[bytes, dict[str, str]]:
    """The page's HTML and its headers."""
    nonce = secrets.token_urlsafe(16)
    rows = []
    for n, (name, value) in enumerate(page.values):
        rows.append(
            f'<div class="label">{html.escape(name)}</div><div class="secret"><code id="v{n}">{html.escape(value)}'
            f'</code><button type="button" data-copy="v{n}">Copy</button></div>'
        )
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in page.facts)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>carto-mcp: {html.escape(page.title)}</title>
<style nonce="{nonce}">{_STYLE}</style></head>
<body><h1>{html.escape(page.title)}</h1>
<p>carto-mcp created this credential for you. Copy the secret now: this page has opened once and will not open
again, and the secret was never put in the chat.</p>
<div class="card">{"".join(rows)}</div>
<div class="card"><div class="label">What it is</div><dl>{facts}</dl></div>
<p class="warn">Keep it in a secret store or a .env file that is not committed. If it leaks, revoke it with
revoke_credential and create a new one.</p>
<script nonce="{nonce}">{_SCRIPT}</script></body></html>
"""
    return body.encode("utf-8"), {**headers(nonce), "Content-Type": "text/html; charset=utf-8"}
