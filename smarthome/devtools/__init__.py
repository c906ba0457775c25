"""Running the pipeline on a laptop and testing it: local Kafka/Spark/Prometheus, demo, chaos.

Not used by the stages at run time; tests and benchmarks share their helpers through here.
"""
