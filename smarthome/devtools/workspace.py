"""Where the local tooling finds the checkout it runs from, and the environment it runs in.

The broker's ``kafka/pom.xml``, the resolved jars in ``.cache/`` and the stage scripts live in
the checkout, not in the installed package; ``make install`` installs the package editable, so
the checkout is two folders above this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
RUN_DIR = CHECKOUT / ".run"


def venv_env() -> dict[str, str]:
    """This environment as an activated virtualenv would make it: ``spark-submit`` (which
    runs ``python3`` from PATH) and Spark's Python workers use this interpreter and its
    packages."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env
