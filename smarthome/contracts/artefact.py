"""The base of every JSON file passed between stages: one class writes it and reads it back.

A file is read strictly (a string is not a number, an unknown key is an error) and must state
the format version its class writes. Whatever is wrong with it, reading raises one
:class:`ContractError` naming the file and the field, e.g.
``spark_models/<set>/manifest.json: field models.efficiency.metrics.accuracy: missing``.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from smarthome.errors import UserError

#: strict, closed, immutable: a renamed or retyped key is an error, never a silent gap
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
#: errors listed in one message; the rest are counted
MAX_LISTED = 3


class ContractError(UserError):
    """A file or API answer does not match its typed contract; the message names both."""


def field_errors(exc: ValidationError) -> list[str]:
    """``field a.b.c: what is wrong`` per error of a pydantic ValidationError."""
    out = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        if error["type"] == "missing":
            what = "missing"
        elif error["type"] == "extra_forbidden":
            what = "unknown field"
        else:
            what = error["msg"].removeprefix("Value error, ")
            if what.startswith("Input should be "):
                what = "must be " + what.removeprefix("Input should be ")
            if not isinstance(error.get("input"), (dict, list)):
                what += f" (got {error.get('input')!r:.60})"
        out.append(f"field {where}: {what}")
    return out


def describe(source: str, exc: ValidationError) -> str:
    """One line: the source, then the first few field errors."""
    errors = field_errors(exc)
    more = len(errors) - MAX_LISTED
    listed = "; ".join(errors[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
    return f"{source}: {listed}"


class Artefact(BaseModel):
    """A JSON document with a ``format`` version; subclasses declare ``format`` and fields."""

    model_config = STRICT
    FORMAT_VERSION: ClassVar[int]
    format: int

    @field_validator("format")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != cls.FORMAT_VERSION:
            raise ValueError(f"must be {cls.FORMAT_VERSION}")
        return value

    @classmethod
    def from_data(cls, data: Any, source: str) -> Self:
        """Validate already decoded JSON (``source`` names where it came from)."""
        if not isinstance(data, dict):
            raise ContractError(f"{source}: must be a JSON object (got {type(data).__name__})")
        if data.get("format") != cls.FORMAT_VERSION:
            got = f"got {data['format']!r}" if "format" in data else "missing"
            raise ContractError(
                f"{source}: field format: must be {cls.FORMAT_VERSION} ({got}); "
                "the file was written by another version of the project"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ContractError(describe(source, exc)) from None

    @classmethod
    def read(cls, path: Path | str) -> Self:
        """The file at ``path``, or ContractError naming the file and the field."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ContractError(f"{path}: missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ContractError(f"{path}: cannot be read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_data(data, str(path))

    def to_json(self) -> str:
        """The document as the file holds it: indented, non-ASCII escaped, no NaN."""
        return json.dumps(self.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"

    def write(self, path: Path | str) -> None:
        """Write atomically and durably: a reader sees the old file or the whole new one."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
