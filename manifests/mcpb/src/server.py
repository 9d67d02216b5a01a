"""Entry point of the carto-mcp MCP Bundle: `carto-mcp serve` on stdio.

The host installs carto-mcp from pyproject.toml with uv and starts this file; the settings the
person chose in the host's UI arrive as environment variables (see manifest.json).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: The `carto-mcp` command line this bundle runs.
ARGV = ["serve"]


def drop_unset_placeholders(environ: MutableMapping[str, str]) -> None:
    """Forget optional settings left empty, which a host may pass on as a literal `${user_config.x}`.

    Otherwise the placeholder text itself would be taken for a token or a profile name.
    """
    for key in [k for k, v in environ.items() if k.startswith("CARTO_") and v.startswith("${user_config.")]:
        del environ[key]


def main() -> int:
    drop_unset_placeholders(os.environ)
    from carto_mcp.cli import main as cli_main

    return cli_main(ARGV)


if __name__ == "__main__":
    sys.exit(main())
