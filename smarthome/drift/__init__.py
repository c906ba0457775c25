"""Drift checks: each batch file against the champion's training rows (DESIGN §17)."""
