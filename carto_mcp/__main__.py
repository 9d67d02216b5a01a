from carto_mcp.cli import main

raise SystemExit(main())
