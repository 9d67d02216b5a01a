"""Make docs/reveal-page.png: a sandbox token's one-time reveal page, rendered by headless Chromium.

    python docs/reveal_screenshot.py docs/reveal-page.png

Needs Debian's `chromium` (/usr/bin/chromium). The token is a throwaway sandbox token: the
page is the real page, served by the real loopback listener, opened once by Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import Any

import anyio
import anyio.to_thread
from mcp import Client
from mcp_types import ElicitResult

from carto_mcp.config import Settings
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.server.app import build_server

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=900,860",
]


async def main(out: str) -> None:
    urls: list[str] = []

    async def browser(context: Any, params: Any) -> ElicitResult:
        urls.append(params.url)
        return ElicitResult(action="accept")

    with running_sandbox() as sandbox:
        settings = Settings(profile=ProfileInputs(token="sandbox-demo-bearer", base_url=sandbox.url))
        async with Client(build_server(settings, environ={}), mode="legacy", elicitation_callback=browser) as client:
            await client.call_tool(
                "create_token",
                {
                    "apis": ["maps"],
                    "name": "storefront-map",
                    "expiration_date": "90d",
                    "grants": [{"connection": "carto_dw", "source": "carto.shared.demo_table"}],
                    "referers": ["https://maps.example.com/"],
                },
            )
            with tempfile.TemporaryDirectory() as profile:
                command = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", urls[0]]
                await anyio.to_thread.run_sync(
                    lambda: subprocess.run(command, check=True, capture_output=True, timeout=60)
                )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "docs/reveal-page.png")
