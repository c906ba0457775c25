"""Segment profiles and descriptions: pure profile code, and analyze_clusters.py on a real set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import analyze_clusters
from smarthome.analysis.segments import profile_clusters, redescribe
from smarthome.contracts import model_sets as registry
from smarthome.contracts.clusters import Clusters


def synthetic() -> pd.DataFrame:
    """Two obvious segments: old heavy-use cameras, new light-use thermostats; one empty id."""
    rows = []
    for i in range(30):
        rows.append(("Camera", 20.0, 9.0, 1, 3, 50, 0, 0))
        rows.append(("Thermostat", 2.0 + i % 2, 1.0, 0, 0, 3, 1, 1))
    columns = [
        "DeviceType",
        "UsageHoursPerDay",
        "EnergyConsumption",
        "UserPreferences",
        "MalfunctionIncidents",
        "DeviceAgeMonths",
        "SmartHomeEfficiency",
        "prediction",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_profile_sizes_means_mix_and_description() -> None:
    profile = profile_clusters(synthetic(), "prediction", k=3)
    first, second, empty = profile.clusters
    assert (first.size, second.size, empty.size) == (30, 30, 0)
    assert first.share == pytest.approx(0.5)
    assert first.means["UsageHoursPerDay"] == pytest.approx(20.0)
    assert first.device_type_shares["Camera"] == 1.0
    assert second.efficiency_rate == 1.0 and first.efficiency_rate == 0.0
    assert profile.overall.efficiency_rate == pytest.approx(0.5)
    assert profile.efficiency_spread() == 1.0
    text = first.description
    assert text.startswith("Segment 0 (50% of devices): ")
    high = ["heavy daily use", "high energy use", "prefer", "frequent malfunctions", "older"]
    assert sum(trait in text for trait in high) == 3  # every feature is 1 std off: top 3 named
    assert not any(w in text for w in ("light daily", "low energy", "few malf", "newer"))
    # by how much: energy 9.0 against the average 5.0 is 80% above; preferences in points
    assert "high energy use (9.0 kWh/day, 80% above the average 5.0 kWh/day)" in text
    assert "(100% on, 50 points above the average 50% on)" in text
    assert "0% efficient, 50 points below the overall 50%" in text
    assert text.endswith("; all Cameras.")
    assert "all Thermostats" in second.description
    assert "100% efficient, 50 points above the overall 50%" in second.description
    assert first.describe("en") == text
    assert second.named("en") == "Low energy use, user preferences mostly off: 100% efficient"
    assert "no device" in empty.description and empty.means["UsageHoursPerDay"] is None
    assert Clusters.from_data(json.loads(profile.to_json()), "x") == profile  # strict JSON


def test_descriptions_in_bahasa_indonesia_say_the_same_with_comma_decimals() -> None:
    first, second, empty = profile_clusters(synthetic(), "prediction", k=3).clusters
    text = first.describe("id")
    assert text.startswith("Segmen 0 (50% perangkat): ")
    assert "konsumsi energi tinggi (9,0 kWh/hari, 80% di atas rata-rata 5,0 kWh/hari)" in text
    assert "0% efisien, 50 poin di bawah keseluruhan 50%" in text
    assert text.endswith("; semuanya Camera.")
    assert second.named("id") == (
        "Konsumsi energi rendah, preferensi pengguna sebagian besar mati: 100% efisien"
    )
    assert "tidak ada perangkat" in empty.describe("id")


def test_a_segment_of_every_device_type_says_so_and_a_plain_one_says_average() -> None:
    rows = synthetic()
    # the same behaviour for every device type: each segment mixes all five types
    types = ["Camera", "Lights", "Security System", "Smart Speaker", "Thermostat"]
    rows["DeviceType"] = [types[i % 5] for i in range(len(rows))]
    first, _ = profile_clusters(rows, "prediction", k=2).clusters
    assert first.description.endswith("; every device type, 20% each.")
    assert first.describe("id").endswith("; semua jenis perangkat, masing-masing 20%.")
    alike = rows.assign(prediction=0)
    (only,) = profile_clusters(alike, "prediction", k=1).clusters
    assert "close to the average device on every feature" in only.description
    assert "50% efficient, as overall" in only.description
    assert only.named() == "Close to the average device: 50% efficient"


def test_a_profile_holding_only_the_english_description_still_reads() -> None:
    data = json.loads(profile_clusters(synthetic(), "prediction", k=2).to_json())
    for cluster in data["clusters"]:
        del cluster["name"], cluster["descriptions"]
    profile = Clusters.from_data(data, "x")
    first = profile.clusters[0]
    assert first.describe("id") == first.description  # English when nothing else is stored
    assert first.named("id") == ""


def test_redescribe_rebuilds_descriptions_from_stored_statistics() -> None:
    profile = profile_clusters(synthetic(), "prediction", k=2)
    blank = [
        c.model_copy(update={"description": "", "name": {}, "descriptions": {}})
        for c in profile.clusters
    ]
    assert redescribe(profile.model_copy(update={"clusters": blank})) == profile


@pytest.mark.spark
@pytest.mark.slow
def test_analyze_clusters_prints_table_and_writes_descriptions(
    spark, trained_model_dir: Path, dataset_batch_dir: Path, tmp_path: Path, capsys
) -> None:
    (source,) = registry.list_sets(trained_model_dir)
    model_dir = tmp_path / "models"
    shutil.copytree(source, model_dir / source.name)
    clusters_file = model_dir / source.name / registry.CLUSTERS
    trained = json.loads(clusters_file.read_text())
    stripped = json.loads(clusters_file.read_text())
    for cluster in stripped["clusters"]:
        cluster.pop("description")
    clusters_file.write_text(json.dumps(stripped))

    code = analyze_clusters.main(
        ["--model-dir", str(model_dir), "--batch-dir", str(dataset_batch_dir)]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "seg  size" in out and "efficient" in out
    written = json.loads(clusters_file.read_text())
    assert written == trained  # same code and data as training: same profile, same sentences
    for cluster in written["clusters"]:
        assert cluster["description"] in out
        assert cluster["description"].startswith(f"Segment {cluster['id']} (")


@pytest.mark.spark
@pytest.mark.slow
def test_trained_profiles_equal_pandas_statistics_of_the_data(
    spark, trained_model_dir: Path, dataset_batch_dir: Path
) -> None:
    """clusters.json (aggregated in Spark) matches pandas on the set's rows and segments."""
    from pyspark.ml import PipelineModel

    (folder,) = registry.list_sets(trained_model_dir)
    profile = json.loads((folder / registry.CLUSTERS).read_text())
    records = pd.concat([pd.read_csv(p) for p in sorted(dataset_batch_dir.iterdir())])
    model = PipelineModel.load(str(folder / "clustering"))
    rows = model.transform(spark.createDataFrame(records)).toPandas()
    features = list(profile["overall"]["means"])
    close = {"abs": 6e-7}  # the file rounds to 6 decimals

    def shares(part: pd.DataFrame) -> dict[str, float]:
        counts = part["DeviceType"].value_counts()
        return {t: counts.get(t, 0) / len(part) for t in profile["overall"]["device_type_shares"]}

    overall = profile["overall"]
    assert overall["rows"] == len(rows) == len(records)
    for c in features:
        assert overall["means"][c] == pytest.approx(rows[c].mean(), **close)
        assert overall["stds"][c] == pytest.approx(rows[c].std(ddof=0), **close)
    assert overall["device_type_shares"] == pytest.approx(shares(rows), **close)
    assert overall["efficiency_rate"] == pytest.approx(rows["SmartHomeEfficiency"].mean(), **close)
    assert [c["id"] for c in profile["clusters"]] == list(range(profile["k"]))
    for cluster in profile["clusters"]:
        part = rows[rows["prediction"] == cluster["id"]]
        assert cluster["size"] == len(part) > 0
        assert cluster["share"] == pytest.approx(len(part) / len(rows), **close)
        for c in features:
            assert cluster["means"][c] == pytest.approx(part[c].mean(), **close)
        assert cluster["device_type_shares"] == pytest.approx(shares(part), **close)
        rate = part["SmartHomeEfficiency"].mean()
        assert cluster["efficiency_rate"] == pytest.approx(rate, **close)
        assert cluster["description"].startswith(f"Segment {cluster['id']} (")


def test_analyze_clusters_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(analyze_clusters.UserError, match="no model set in .*spark_training"):
        analyze_clusters.main(["--model-dir", str(tmp_path)])
    with pytest.raises(analyze_clusters.UserError, match="no model set 'nope'"):
        analyze_clusters.main(["--model-dir", str(tmp_path), "--set", "nope"])
