"""The iwlz node: I/O around the protocol (store, server, client, discovery, CLI)."""
