"""The publish guard without a cluster: a set the driver sees with missing parts stays hidden."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry


def test_a_set_whose_parts_are_missing_is_never_published(tmp_path: Path) -> None:
    """The driver's view of a set the executors wrote on another disk: _SUCCESS, no parts."""
    from smarthome.errors import UserError
    from smarthome.training.build import publish_set
    from smarthome.training.storage_check import check_complete

    model_dir = tmp_path / "models"
    tmp = registry.tmp_dir(model_dir) / registry.set_name(1)
    for name in registry.MODEL_NAMES:
        (tmp / name / "metadata").mkdir(parents=True)
        (tmp / name / "metadata" / "_SUCCESS").touch()
        (tmp / name / "metadata" / "part-00000").write_text("{}")
    check_complete(tmp)  # whole: passes
    (tmp / "efficiency" / "metadata" / "part-00000").unlink()
    with pytest.raises(UserError, match=re.escape("efficiency/metadata has no part files")):
        publish_set(tmp, model_dir)
    assert registry.list_sets(model_dir) == []
