"""Every artefact passed between stages is written and read through one typed class.

Round trips are exact, and an old or broken file is one ContractError naming the file and
the field (never a silent gap further down).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.batch_files import BatchName, batch_file_name
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.manifest import Manifest, TrainSettings
from smarthome.errors import UserError
from tests.helpers.samples import rename_key, sample_clusters, sample_manifest, write_set


@pytest.mark.parametrize("make", [sample_manifest, sample_clusters], ids=["manifest", "clusters"])
def test_round_trip_through_the_file_is_exact(make, tmp_path: Path) -> None:
    artefact = make()
    path = tmp_path / "file.json"
    artefact.write(path)
    again = type(artefact).read(path)
    assert again == artefact
    assert path.read_text() == artefact.to_json()  # what is read is what was written
    assert json.loads(path.read_text())["format"] == type(artefact).FORMAT_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]  # no temporary file left


def test_a_renamed_manifest_key_is_one_error_naming_the_file_and_the_field(tmp_path) -> None:
    folder = write_set(tmp_path, sample_manifest(3))
    path = folder / registry.MANIFEST
    rename_key(path, "models.efficiency.metrics.accuracy", "acc")
    with pytest.raises(ContractError) as info:
        Manifest.read(path)
    assert isinstance(info.value, UserError)  # shown as one line by every script
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "field models.efficiency.metrics.accuracy: missing" in message
    assert "field models.efficiency.metrics.acc: unknown field" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("format"), "field format: must be 1 (missing)"),
        (lambda d: d.update(format=2), "field format: must be 1 (got 2)"),
        (lambda d: d.update(rows="1000"), "field rows: must be a valid integer (got '1000')"),
        (lambda d: d.update(created_at="yesterday"), "field created_at: "),
        (lambda d: d.update(created_at="2026-01-01T00:00:00"), "with a UTC offset"),
        (lambda d: d["models"].pop("malfunction"), "field models.malfunction: missing"),
        (lambda d: d["config"].update(quick="no"), "field config.quick: must be"),
        (lambda d: d["config"].update(fast=True), "field config.fast: unknown field"),
    ],
)
def test_each_broken_manifest_names_its_field(change, expected, tmp_path: Path) -> None:
    data = sample_manifest().model_dump(mode="json")
    change(data)
    path = tmp_path / registry.MANIFEST
    path.write_text(json.dumps(data))
    with pytest.raises(ContractError, match="^" + str(path).replace(".", r"\.")) as info:
        Manifest.read(path)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "not valid JSON"), ("[1]", "must be a JSON object (got list)"), (None, "missing")],
)
def test_unreadable_files_are_contract_errors(text, expected, tmp_path: Path) -> None:
    path = tmp_path / registry.CLUSTERS
    if text is not None:
        path.write_text(text)
    with pytest.raises(ContractError) as info:
        Clusters.read(path)
    assert str(info.value) == f"{path}: {expected}" or str(info.value).startswith(
        f"{path}: {expected} ("
    )


@pytest.mark.parametrize("retired", sorted(TrainSettings.RETIRED))
def test_a_manifest_with_a_retired_setting_still_reads(retired: str, tmp_path: Path) -> None:
    """Sets trained by an older version still load; the setting is not served any more."""
    data = sample_manifest().model_dump(mode="json")
    data["config"][retired] = True
    path = tmp_path / registry.MANIFEST
    path.write_text(json.dumps(data))
    config = Manifest.read(path).config
    assert config == sample_manifest().config
    assert retired not in config.model_dump()


def test_clusters_have_one_id_name_and_every_feature(tmp_path: Path) -> None:
    path = tmp_path / registry.CLUSTERS
    sample_clusters().write(path)
    rename_key(path, "clusters.1.id", "cluster")
    with pytest.raises(ContractError, match="field clusters.1.id: missing"):
        Clusters.read(path)
    data = sample_clusters().model_dump(mode="json")
    del data["clusters"][0]["means"]["DeviceAgeMonths"]
    with pytest.raises(ContractError, match="field clusters.0.means: .*missing DeviceAgeMonths"):
        Clusters.from_data(data, "x")
    data = sample_clusters().model_dump(mode="json")
    data["clusters"].reverse()
    with pytest.raises(ContractError, match=r"ids must be 0..1 in order \(got \[1, 0\]\)"):
        Clusters.from_data(data, "x")


def test_an_empty_segment_has_null_means_and_says_so() -> None:
    data = sample_clusters().model_dump(mode="json")
    data["clusters"][1]["means"] = dict.fromkeys(data["clusters"][1]["means"])
    assert Clusters.from_data(data, "x").clusters[1].means["UsageHoursPerDay"] is None


def test_batch_file_name_is_written_and_read_by_one_class() -> None:
    name = batch_file_name("smart_home_stream", 2, 1000, 1999)
    parsed = BatchName.parse(name)
    assert parsed is not None
    assert (parsed.topic, parsed.partition, parsed.start_offset, parsed.end_offset) == (
        "smart_home_stream", 2, 1000, 1999,
    )  # fmt: skip
    assert parsed.file_name == name  # the one class writes the name and reads it back
    assert BatchName.parse("smart_home_batch_x.csv") is None
