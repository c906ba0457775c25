"""Scoring the stream as it flows (DESIGN §15): each record's predictions on a Kafka topic.

``scorer`` is the consume-score-produce loop in Kafka transactions (``StreamScorer``),
``outputs`` turns one poll's messages into predictions, alerts and dead letters, ``alerts``
holds the thresholds and their reasons in words, ``kafka_clients`` the clients and topics.
``kafka_stream_predict.py`` runs it; the message formats are ``contracts.predictions``.
"""
