"""A small client for the prediction API, with timeouts and errors a person can act on.

Every failure becomes an :class:`ApiError` whose ``kind`` selects a translated message in the
page (unreachable, timeout, rejected input, no model set, server error, bad response), so the
UI never shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic

import requests
from pydantic import RootModel

from smarthome.contracts.api import (
    Body,
    DriftResponse,
    EfficiencyResult,
    MalfunctionResult,
    ModelsResponse,
    SegmentResult,
    SegmentsResponse,
    SetEntry,
    StatusResponse,
    read_response,
)
from smarthome.contracts.artefact import ContractError
from smarthome.observe.live import LiveView
from smarthome.observe.status import PipelineStatus

#: a POST body: one record, or a list of records
Records = dict[str, Any] | list[dict[str, Any]]

#: seconds to wait for a connection and for an answer; a slow API is reported, not waited on
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0


@dataclass
class ApiError(Exception):
    """A failed API call; ``kind`` is one of the i18n keys ``err_<kind>``."""

    kind: str  # unreachable | timeout | not_found | invalid | no_model | server | bad_response
    message: str = ""
    details: list[str] = field(default_factory=list)
    status: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _error_from_response(resp: requests.Response) -> ApiError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error") or resp.reason or "")
    details = body.get("details") or []
    if not isinstance(details, list):
        details = [details]
    details = [str(d) for d in details]
    if resp.status_code == 503:
        kind = "no_model"
    elif resp.status_code in (404, 405):
        kind = "not_found"
    elif 400 <= resp.status_code < 500:
        kind = "invalid"
    else:
        kind = "server"
    return ApiError(kind, message, details, resp.status_code)


class ApiClient:
    """Calls the API at ``base_url``; one instance per page run is cheap (a requests Session)."""

    def __init__(
        self,
        base_url: str,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.base_url = base_url.strip().rstrip("/")
        self.timeout = (connect_timeout or CONNECT_TIMEOUT, read_timeout or READ_TIMEOUT)
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        if not self.base_url.startswith(("http://", "https://")):
            raise ApiError("unreachable", f"not an http(s) URL: {self.base_url!r}")
        try:
            resp = self.session.request(method, url, json=body, timeout=self.timeout)
        except requests.Timeout as exc:
            raise ApiError("timeout", f"{url}: no answer within {self.timeout[1]:g}s") from exc
        except requests.RequestException as exc:
            raise ApiError("unreachable", f"{url}: {type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise _error_from_response(resp)
        try:
            return resp.json()
        except ValueError as exc:
            raise ApiError("bad_response", f"{url}: not JSON", status=resp.status_code) from exc

    def _read(self, model: type[Body], path: str, body: Any = None) -> Body:
        """One call's answer read through its type: a missing or renamed field is an error."""
        method = "GET" if body is None else "POST"
        try:
            return read_response(model, self._call(method, path, body), f"{method} {path}")
        except ContractError as exc:
            raise ApiError("bad_response", str(exc)) from None

    def status(self) -> StatusResponse:
        """``GET /``: status, loaded model set, its metrics and manifest."""
        return self._read(StatusResponse, "/")

    def models(self) -> list[SetEntry]:
        """``GET /models``: every set, newest first, each with its manifest or its error."""
        return self._read(ModelsResponse, "/models").sets

    def pipeline(self) -> PipelineStatus:
        """``GET /pipeline``: topic, consumer lag, batch files, model sets."""
        return self._read(PipelineStatus, "/pipeline")

    def live(self, limit: int) -> LiveView:
        """``GET /live``: the stream scorer's newest predictions and alerts."""
        return self._read(LiveView, f"/live?limit={int(limit)}")

    def drift(self) -> DriftResponse:
        """``GET /drift``: every checked batch file's drift report, oldest first."""
        return self._read(DriftResponse, "/drift")

    def segments(self) -> SegmentsResponse:
        """``GET /segments``: the loaded set's cluster profiles."""
        return self._read(SegmentsResponse, "/segments")

    def predict_efficiency(self, body: Records) -> EfficiencyResult | list[EfficiencyResult]:
        return self._predict(EfficiencyResult, "/predict_efficiency", body)

    def predict_malfunction(self, body: Records) -> MalfunctionResult | list[MalfunctionResult]:
        return self._predict(MalfunctionResult, "/predict_malfunction", body)

    def get_device_segment(self, body: Records) -> SegmentResult | list[SegmentResult]:
        return self._predict(SegmentResult, "/get_device_segment", body)

    def _predict(self, model: type[Body], path: str, body: Records) -> Body | list[Body]:
        """POST one record (one answer) or a list of records (a list in order) to ``path``."""
        if isinstance(body, list):
            return self._read(_ListOf[model], path, body).root  # type: ignore[valid-type]
        return self._read(model, path, body)


class _ListOf(RootModel[list[Body]], Generic[Body]):
    """A JSON list of answers, read item by item through the answer's type."""
