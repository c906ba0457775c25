"""Fuzzing from ``/openapi.json`` (schemathesis): no 5xx, every response as documented.

Positive and negative cases for every operation, through the WSGI app serving the real
trained set; at least 1,000 cases in all. Driven with plain hypothesis ``@given`` because
schemathesis' lazy pytest fixture (``from_fixture``) fails on pytest 9.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from smarthome.api import create_app
from smarthome.api.openapi import build_document

EXAMPLES = {GenerationMode.POSITIVE: 220, GenerationMode.NEGATIVE: 180}
OPERATIONS = [
    (method.upper(), path, mode)
    for path, item in build_document()["paths"].items()
    for method in item
    for mode in (EXAMPLES if method == "post" else [GenerationMode.POSITIVE])
]
pytestmark = pytest.mark.spark  # serves the set trained by the shared Spark fixture


@pytest.fixture(scope="module")
def api_schema(trained_model_dir: Path):
    app = create_app(trained_model_dir, reload_seconds=0)
    assert app.extensions["model_holder"].current is not None
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_openapi_fuzz(api_schema) -> None:
    cases: list[str] = []
    for method, path, mode in OPERATIONS:
        operation = api_schema[path][method]

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case) -> None:
            cases.append(case.operation.label)
            response = case.call_and_validate()  # every check: status, schema, content type
            assert response.status_code < 500

        fuzz()
    assert len(cases) >= 1000, f"only {len(cases)} fuzz cases ran"
    assert set(cases) == {f"{m} {p}" for m, p, _ in OPERATIONS}
