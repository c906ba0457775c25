"""Spark MLlib training of the cumulative model sets: plan, build, publish (DESIGN §6)."""
