"""Segment profiles and their generated descriptions (``analyze_clusters.py``, DESIGN §6)."""
