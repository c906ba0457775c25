"""Watching the pipeline: Prometheus collectors and the ``GET /pipeline`` view (DESIGN §12)."""
