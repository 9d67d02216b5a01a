"""The floor for the per-call and concurrency benchmarks: the smallest MCPServer whose tools make
the same HTTP requests to the same sandbox as carto-mcp's tools, through one shared
httpx2.AsyncClient, and return the JSON as is (a list is cut to `limit` rows, as carto-mcp's is).

    python benchmarks/floor_http_server.py --base-url URL --token T                  # stdio
    python benchmarks/floor_http_server.py --base-url URL --token T --port P         # stateless HTTP, JSON responses

Each tool sends exactly the requests the matching carto-mcp tool sends (checked by the
benchmarks with the sandbox's request counter): list = one page; get = one lookup; create =
one POST; revoke (as with `--yes`) = a lookup, then the DELETE.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.server.mcpserver import Context, MCPServer


def build(base_url: str, token: str) -> MCPServer[httpx2.AsyncClient]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[httpx2.AsyncClient]) -> AsyncIterator[httpx2.AsyncClient]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=15.0) as http:
            yield http

    # WARNING, as carto-mcp sets it: at INFO every request would be logged to stderr.
    mcp: MCPServer[httpx2.AsyncClient] = MCPServer("floor-http", lifespan=lifespan, log_level="WARNING")

    def http_of(ctx: Context[Any, Any]) -> httpx2.AsyncClient:
        return ctx.request_context.lifespan_context  # type: ignore[no-any-return]

    @mcp.tool()
    async def list_credentials(ctx: Context[Any, Any], limit: int = 50) -> dict[str, Any]:
        """The first `limit` tokens of one page, as the API returns them (same row count as carto-mcp)."""
        response = await http_of(ctx).get("/v3/tokens", params={"page": "1", "per_page": "100"})
        response.raise_for_status()
        body = response.json()
        return {"data": body["data"][:limit], "total": body["total"]}

    @mcp.tool()
    async def get_credential(ctx: Context[Any, Any], token: str) -> dict[str, Any]:
        """One token, as the API returns it."""
        response = await http_of(ctx).get(f"/v3/tokens/{token}")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    @mcp.tool()
    async def create_token(ctx: Context[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
        """POST the body as is."""
        response = await http_of(ctx).post("/v3/tokens", json=body)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    @mcp.tool()
    async def revoke_credential(ctx: Context[Any, Any], token: str) -> dict[str, Any]:
        """Look the token up, then delete it (what carto-mcp's revoke does with --yes)."""
        http = http_of(ctx)
        found = await http.get(f"/v3/tokens/{token}")
        found.raise_for_status()
        response = await http.delete(f"/v3/tokens/{token}")
        response.raise_for_status()
        return {"status": "revoked"}

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, help="serve stateless streamable HTTP (JSON responses) on this port")
    args = parser.parse_args()
    mcp = build(args.base_url, args.token)
    if args.port is None:
        mcp.run()
        return

    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @mcp.custom_route("/healthz", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = mcp.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
