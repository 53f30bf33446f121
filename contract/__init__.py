"""What the web process, the worker, the CLI and the frontend must agree on, written once.

- ``contract.node_ids``: the node-id grammar of schema-v1 graph JSON and the Cantor pairing of
  a feature's (layer, index);
- ``contract.graph_json``: the schema-v1 validator and the bounded reading of graph files;
- ``contract.graph_binary``: the explorer's binary sidecar of a stored graph (spec and encoder);
- ``contract.params``: the typed parameters of each job kind, with their defaults and bounds;
- ``contract.server_paths``: what counts as a server path, and the name shown in its place;
- ``contract.typescript``: writes ``frontend/src/contract.gen.ts``, the frontend's copy of
  the constants and test vectors (a test fails when it is stale).

Pure Python: no Django, no torch, no app imports (import-linter enforces it), so every layer
may import it.
"""
