"""Real inputs for the fleet tests: the lab's console logs, analyzed once per session as
`ktriage analyze --format json` would print them."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "fixtures" / "lab"
LAB_ARM64 = REPO / "tests" / "fixtures" / "lab-arm64"

__all__ = ["LAB", "LAB_ARM64", "analyzed"]


@functools.cache
def _analyzed(paths: tuple[str, ...]) -> str:
    from ktriage.pipeline import Options, analyze_paths
    from ktriage.render.json_out import render

    return render(analyze_paths(list(paths), Options()))


def analyzed(*paths: str | Path) -> dict[str, Any]:
    """The report `ktriage analyze --format json PATHS` prints (a fresh copy each call)."""
    return json.loads(_analyzed(tuple(str(p) for p in paths)))
