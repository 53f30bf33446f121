"""Graphs app: attribution graphs, their node index, subgraph annotations and generation jobs."""
