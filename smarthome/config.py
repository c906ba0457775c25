"""The one place that names every setting, its environment variable and its default.

Scripts take flags whose defaults come from the environment, so ``flags > env > default``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: environment variable -> default (DESIGN §2)
DEFAULTS: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
    "KAFKA_TOPIC": "smart_home_stream",
    "DATASET_PATH": "dataset/smart_home_device_usage_data.csv",
    "BATCH_DIR": "batched_data",
    "MODEL_DIR": "spark_models",
    "SPARK_MASTER": "local[*]",
    "API_URL": "http://localhost:5000",
}

CONSUMER_GROUP = "smart-home-batcher"
SCORER_GROUP = "smart-home-scorer"  # kafka_stream_predict.py (DESIGN §15)

#: Not a user setting: app_api.py sets it for its granian workers, whose metrics then go to
#: files one scrape adds up; prometheus_client reads it once, when first imported.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def env(name: str) -> str:
    """The value of a setting from the environment, or its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown setting {name!r}; known: {', '.join(DEFAULTS)}")
    value = os.environ.get(name, "").strip()
    return value or DEFAULTS[name]


def help_default(name: str) -> str:
    """A help-text suffix such as ``(env KAFKA_TOPIC, default: smart_home_stream)``."""
    return f"(env {name}, now: {env(name)})"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    kafka_topic: str
    dataset_path: str
    batch_dir: str
    model_dir: str
    spark_master: str
    api_url: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(**{name.lower(): env(name) for name in DEFAULTS})
