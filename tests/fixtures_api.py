"""Fixtures for the API stage: a real ``python app_api.py`` serving the real trained set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smarthome.devtools.servers import running_api


@pytest.fixture(scope="session")
def api_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of ``python app_api.py`` serving the session's trained model set."""
    log_path = tmp_path_factory.mktemp("api") / "app_api.log"
    with running_api(trained_model_dir, log_path) as url:
        yield url
