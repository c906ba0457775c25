"""One way to build the SparkSession every Spark script uses (small data, laptop, quiet).

The master comes from ``--master`` when given; otherwise, under ``spark-submit``, from
spark-submit itself (DESIGN §2: its ``--master`` wins); otherwise from ``SPARK_MASTER``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from .config import env

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
}


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
    return spark


def _log4j2_file() -> Path:
    path = Path(tempfile.gettempdir()) / f"smarthome-log4j2-{os.getuid()}.properties"
    if not path.is_file() or path.read_text() != LOG4J2_PROPERTIES:
        path.write_text(LOG4J2_PROPERTIES)
    return path
