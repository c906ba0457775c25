"""The promotion gate's files (DESIGN §16): a set's ``promotion.json`` and the champion pointer.

Every published set is a candidate; the gate writes its decision, with each figure on both
sides, into ``<set>/promotion.json``. The set the API and the stream scorer serve is named by
``<model_dir>/champion.json``, replaced atomically (temporary file, fsync, rename) by the gate,
``promote_model.py promote`` and ``rollback``. With no pointer (sets trained before the gate),
the newest set is served, as it always was.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import STRICT, Artefact

FORMAT_VERSION = 1
PROMOTION = "promotion.json"
CHAMPION = "champion.json"

#: how a decision was taken: the first set, the gate's checks, ``--no-gate`` (every new set is
#: champion, the checks recorded for information), or a ``--retrain-all`` replacing a set
Mode = Literal["first", "gate", "no-gate", "retrain"]
#: who moved the pointer
MovedBy = Literal["first", "gate", "no-gate", "retrain", "promote", "rollback"]


class _Strict(BaseModel):
    model_config = STRICT


class Check(_Strict):
    """One rule of the gate, with the figures on both sides."""

    name: str = Field(description="e.g. 'efficiency accuracy'")
    passed: bool
    candidate: float | None = Field(description="The candidate's figure")
    champion: float | None = Field(
        description="The other side: the champion's figure, or the baseline's"
    )
    limit: float | None = Field(description="What the candidate had to reach (or stay below)")
    rule: str = Field(description="The rule in words")


class Promotion(Artefact):
    """``<set>/promotion.json``: whether the set became champion, and why."""

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    format: int = FORMAT_VERSION
    set: str = Field(description="The candidate set's folder name")
    decided_at: str = Field(description="UTC time of the decision, ISO 8601")
    mode: Mode
    promoted: bool
    champion_before: str | None = Field(description="The champion it was compared with")
    tolerance: float = Field(ge=0, description="How much worse accuracy and F1 may be")
    held_out_rows: int = Field(ge=0, description="The candidate's held-out rows both scored")
    checks: list[Check]
    reasons: list[str] = Field(description="One sentence per reason, for people")


class ChampionEntry(_Strict):
    set: str
    at: str = Field(description="UTC time the pointer moved, ISO 8601")
    by: MovedBy
    note: str = ""


class ChampionPointer(Artefact):
    """``<model_dir>/champion.json``: the served set; ``history`` ends with it (rollback pops)."""

    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    format: int = FORMAT_VERSION
    set: str
    since: str
    by: MovedBy
    history: list[ChampionEntry] = Field(description="Champions, oldest first; the last is set")


def champion_path(model_dir: Path | str) -> Path:
    return Path(model_dir) / CHAMPION


def read_champion(model_dir: Path | str) -> ChampionPointer | None:
    """The pointer, or None when there is none (ContractError when it is broken)."""
    path = champion_path(model_dir)
    if not path.exists():
        return None
    return ChampionPointer.read(path)


def read_promotion(set_dir: Path | str) -> Promotion | None:
    """A set's decision, or None when it has none yet (ContractError when broken)."""
    path = Path(set_dir) / PROMOTION
    if not path.exists():
        return None
    return Promotion.read(path)


def champion_set(model_dir: Path | str) -> Path | None:
    """The champion's folder when the pointer names a published set, else None."""
    pointer = read_champion(model_dir)
    if pointer is None:
        return None
    folder = Path(model_dir) / pointer.set
    return folder if registry.SET_NAME.match(pointer.set) and folder.is_dir() else None
