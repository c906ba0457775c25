"""Fixtures for the kafka stage (owned by that stage's tests)."""
