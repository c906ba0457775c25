"""A small client for the prediction API, with timeouts and errors a person can act on.

Every failure becomes an :class:`ApiError` whose ``kind`` selects a translated message in the
page (unreachable, timeout, rejected input, no model set, server error, bad response), so the
UI never shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests
from pydantic import ValidationError

from smarthome.observe.pipeline import PipelineView

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

    def _expect(self, value: Any, kind: type, path: str) -> Any:
        if not isinstance(value, kind):
            raise ApiError("bad_response", f"{path}: expected a JSON {kind.__name__}")
        return value

    def status(self) -> dict[str, Any]:
        """``GET /``: status, loaded model set and its metrics."""
        return self._expect(self._call("GET", "/"), dict, "/")

    def models(self) -> list[dict[str, Any]]:
        """``GET /models``: every set's manifest, newest first.

        The API wraps each manifest as ``{"name", "loaded", "manifest", "error"}`` inside
        ``{"sets": [...]}``; the set's folder name and loaded flag are kept as ``_set_name`` and
        ``_loaded``. A set whose manifest is unreadable is left out.
        """
        body = self._call("GET", "/models")
        if isinstance(body, dict):
            body = next((body[k] for k in ("sets", "models") if isinstance(body.get(k), list)), [])
        manifests = []
        for entry in self._expect(body, list, "/models"):
            if not isinstance(entry, dict):
                continue
            manifest = entry.get("manifest", entry)
            if isinstance(manifest, dict):
                manifests.append(
                    {**manifest, "_set_name": entry.get("name"), "_loaded": entry.get("loaded")}
                )
        return manifests

    def pipeline(self) -> PipelineView:
        """``GET /pipeline``, read through its type: a missing or renamed field is an error."""
        body = self._call("GET", "/pipeline")
        try:
            return PipelineView.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ApiError("bad_response", f"/pipeline: {where}: {first['msg']}") from None

    def segments(self) -> Any:
        """``GET /segments`` when the API has it (cluster profiles of the loaded set)."""
        return self._call("GET", "/segments")

    def predict(self, path: str, body: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """POST one record (→ dict) or a list of records (→ list in order) to ``path``."""
        answer = self._call("POST", path, body)
        return self._expect(answer, list if isinstance(body, list) else dict, path)

    def predict_efficiency(self, body: Any) -> Any:
        return self.predict("/predict_efficiency", body)

    def predict_malfunction(self, body: Any) -> Any:
        return self.predict("/predict_malfunction", body)

    def get_device_segment(self, body: Any) -> Any:
        return self.predict("/get_device_segment", body)
