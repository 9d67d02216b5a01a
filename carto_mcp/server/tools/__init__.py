"""One module per group of tools, each exposing `register(server, allowed)`."""
