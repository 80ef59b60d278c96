"""Suite-wide settings.

Under CI (CI=true) hypothesis runs derandomized, so a red build is reproducible from its log; locally it keeps
exploring new examples on every run. `HYPOTHESIS_PROFILE=thorough` explores ten times more.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("thorough", max_examples=3_000, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# The journal's backends (SQLite, PostgreSQL) for the tests parametrized over them.
pytest_plugins = ["tests.journal_backends"]
