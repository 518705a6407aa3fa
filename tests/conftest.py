"""Suite-wide settings.

Hypothesis runs derandomized: CI explores the same examples on every run, so a red build
always means a code change, never a lucky draw; the examples explored are still many and
varied. To search afresh locally, set ``LOOPML_HYPOTHESIS=explore``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile("explore" if os.environ.get("LOOPML_HYPOTHESIS") == "explore" else "ci")
