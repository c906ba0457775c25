"""Scoring without Spark: a model set's ``scoring.json`` evaluated with numpy (DESIGN §7).

``model_set`` loads a set and is what the API holds; ``stages`` and ``estimators`` hold each
Spark stage kind training fits, written once for one row and for many. Never imports pyspark.
"""
