"""Describe the KMeans segments of a model set and write the descriptions to its clusters.json.

    spark-submit analyze_clusters.py [--set NAME]     # or: python analyze_clusters.py

Prints one row per segment (size, share, feature means against the overall mean, device-type
mix, efficiency rate) and the generated one-sentence descriptions, computed by the same code
that training uses, so the UI shows them without any hand-copied text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smarthome.cli import run
from smarthome.config import env, help_default
from smarthome.contracts import model_sets as registry
from smarthome.contracts.clusters import Clusters
from smarthome.contracts.manifest import Manifest
from smarthome.errors import UserError, disk_full_is_a_user_error

PROG = "analyze_clusters.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="set_name", help="model set folder name (default: newest)")
    parser.add_argument(
        "--model-dir", default=env("MODEL_DIR"), help=f"model sets {help_default('MODEL_DIR')}"
    )
    parser.add_argument(
        "--batch-dir", default=env("BATCH_DIR"), help=f"batch files {help_default('BATCH_DIR')}"
    )
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master; default: spark-submit's when run by spark-submit, else "
        f"{help_default('SPARK_MASTER')}",
    )
    return parser.parse_args(argv)


def find_set(model_dir: Path, name: str | None) -> Path:
    """The named set, or the newest; UserError saying how to get one."""
    if name:
        path = model_dir / name
        if not registry.SET_NAME.match(name) or not path.is_dir():
            known = ", ".join(p.name for p in registry.list_sets(model_dir)) or "none"
            raise UserError(f"no model set {name!r} in {model_dir} (sets: {known})")
        return path
    newest = registry.newest_set(model_dir)
    if newest is None:
        raise UserError(
            f"no model set in {model_dir}; train one with `spark-submit spark_training.py`"
        )
    return newest


def recompute(set_dir: Path, batch_dir: Path, manifest: Manifest, master: str | None) -> Clusters:
    """Profile the set's segments from its batch files with its saved KMeans pipeline."""
    from pyspark.ml import PipelineModel

    from smarthome.analysis.profile import profile_segments
    from smarthome.training.batches import read_batches
    from smarthome.training.spark import get_spark

    files = [batch_dir / name for name in manifest.batch_files]
    spark = get_spark(master, app_name="analyze_clusters")
    data = read_batches(spark, files)
    model = PipelineModel.load(str(set_dir / "clustering"))
    return profile_segments(model, data.df, manifest.models.clustering.k)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from smarthome.analysis.segments import redescribe, table

    set_dir = find_set(Path(args.model_dir), args.set_name)
    manifest = Manifest.read(set_dir / registry.MANIFEST)
    batch_dir = Path(args.batch_dir)
    missing = [n for n in manifest.batch_files if not (batch_dir / n).is_file()]
    if missing:
        print(
            f"{len(missing)} of the set's batch files are not in {batch_dir}; "
            "describing the profile stored in clusters.json",
            flush=True,
        )
        profile = redescribe(Clusters.read(set_dir / registry.CLUSTERS))
    else:
        print(f"profiling the segments of {set_dir.name} from {batch_dir}", flush=True)
        profile = recompute(set_dir, batch_dir, manifest, args.master)
    print(f"\nSegments of {set_dir.name} ({profile.overall.rows} devices)\n")
    print(table(profile))
    with disk_full_is_a_user_error(set_dir, "its clusters.json is unchanged"):
        profile.write(set_dir / registry.CLUSTERS)  # atomic: no partial file is left
    print(f"\nwrote the descriptions to {set_dir / registry.CLUSTERS}")
    return 0


if __name__ == "__main__":
    run(main, PROG)
