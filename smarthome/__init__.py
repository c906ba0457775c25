"""Shared code of the smart-home streaming ML pipeline (config, schema, Kafka, batches, models)."""

__version__ = "0.1.0"
