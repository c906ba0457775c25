"""Where the local tooling finds the checkout it runs from.

The broker's ``kafka/pom.xml``, the resolved jars in ``.cache/`` and the stage scripts live in
the checkout, not in the installed package; ``make install`` installs the package editable, so
the checkout is two folders above this file.
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
RUN_DIR = CHECKOUT / ".run"
