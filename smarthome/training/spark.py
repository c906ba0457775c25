"""One way to build the SparkSession every Spark script uses (small data, laptop, quiet).

The master comes from ``--master`` when given; otherwise, under ``spark-submit``, from
spark-submit itself (DESIGN §2: its ``--master`` wins); otherwise from ``SPARK_MASTER``.
On a cluster master the ``smarthome`` package is shipped to the executors (a zip given to
``addPyFile``), so a Python task that uses it imports it wherever the executor runs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from pyspark.sql import SparkSession

from smarthome.config import env

#: log4j2 config for a JVM that Python launches: errors only, on stderr
LOG4J2_PROPERTIES = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
"""

#: settings that suit a few thousand rows on a 2-core machine
CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.memory": "2g",
    # a set runs ~80 queries, more than the default 100-entry cache of compiled query code
    # holds across sets: every miss compiles Java again (Janino, then the JIT on top)
    "spark.sql.codegen.cache.maxEntries": "1000",
    # a barrier stage (training/storage_check.py) whose slots vanished: fail in seconds, not 10 min
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "1s",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "5",
}
PACKAGE = Path(__file__).resolve().parents[1]  # the whole smarthome package


def under_spark_submit() -> bool:
    """True when spark-submit started this Python process (it already chose a master)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(master: str | None = None, app_name: str = "smarthome") -> SparkSession:
    """The (possibly already running) SparkSession, configured for small local jobs.

    ``master=None`` means: spark-submit's choice when under spark-submit, else ``SPARK_MASTER``.
    """
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif not under_spark_submit():
        builder = builder.master(env("SPARK_MASTER"))
    for key, value in CONF.items():
        builder = builder.config(key, value)
    if not under_spark_submit():
        # only takes effect when Python launches the JVM (spark-submit's JVM already runs)
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_log4j2_file()}"
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if not is_local(spark.sparkContext.master):
        ship_package(spark)
    return spark


def is_local(master: str) -> bool:
    """Whether executors run inside the driver's JVM (``local``, ``local[N]``, ``local[*]``)."""
    return master.startswith("local")


def ship_package(spark: SparkSession) -> Path | None:
    """Zip ``smarthome/`` and add it to every executor's ``sys.path`` (``addPyFile``).

    Executors run in their worker's work dir, on other machines too: without this a task that
    uses ``smarthome`` imports it only by luck. The zip lives until the driver exits (Spark
    serves it from there to executors that join later). None if this session already has it.
    """
    if any(Path(added).name == "smarthome.zip" for added in spark.sparkContext.listFiles):
        return None  # getOrCreate returned a session we shipped to already
    folder = Path(tempfile.mkdtemp(prefix="smarthome-pyfiles-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = folder / "smarthome.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zipped.write(path, Path(PACKAGE.name) / path.relative_to(PACKAGE))
    spark.sparkContext.addPyFile(str(archive))
    return archive


def _log4j2_file() -> Path:
    path = Path(tempfile.gettempdir()) / f"smarthome-log4j2-{os.getuid()}.properties"
    if not path.is_file() or path.read_text() != LOG4J2_PROPERTIES:
        path.write_text(LOG4J2_PROPERTIES)
    return path
