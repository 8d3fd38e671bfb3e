"""Hypothesis profiles for the fuzz tests: `ci` (CI=true) keeps the whole fuzz suite under ~2 minutes of
CPU; `dev` (default) is quicker still; `long` (HYPOTHESIS_PROFILE=long) is for a fuzzing session by hand.
Every input that ever failed is kept: as an @example on its test, or as a file in tests/fuzz/corpus/."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": 5000, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=20000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))
