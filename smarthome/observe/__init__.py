"""Watching the running stages: Prometheus collectors and the status ``GET /pipeline`` serves
(DESIGN §12)."""
