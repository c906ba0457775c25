"""Fixtures for the models stage (owned by that stage's tests)."""
