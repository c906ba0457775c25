"""Kafka in, batch files out: dataset reading, producer, consumer, fencing (DESIGN §3-5)."""
