"""Analyzer registry.

An analyzer is a plain function `(ctx: AnalysisContext) -> list[Finding]`, registered with
`@analyzer("name", needs=(...))`. It reads the crash (and the debug info or vmcore when the
context has them) and returns findings; when something it needs is missing it raises
`Skip("why")`, which the runner records instead of a finding. One analyzer failing never
stops the others: the runner turns an unexpected exception into a Skipped entry too.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ktriage.model import Crash, Finding, Skipped


class Skip(Exception):
    """Raised by an analyzer that lacks what it needs; the message says what."""


@dataclass
class AnalysisContext:
    crash: Crash
    debuginfo: Any = None  # ktriage.debuginfo session, when found
    vmcore: Any = None  # ktriage.vmcore session, when given
    findings: list[Finding] = field(default_factory=list)  # earlier analyzers' findings

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)


AnalyzerFn = Callable[[AnalysisContext], list[Finding]]


@dataclass(frozen=True)
class Analyzer:
    name: str
    fn: AnalyzerFn
    order: int
    needs: tuple[str, ...]


_REGISTRY: dict[str, Analyzer] = {}


def analyzer(name: str, order: int = 50, needs: tuple[str, ...] = ()) -> Callable[[AnalyzerFn], AnalyzerFn]:
    """Register an analyzer. Lower `order` runs first; later ones see earlier findings."""

    def wrap(fn: AnalyzerFn) -> AnalyzerFn:
        _REGISTRY[name] = Analyzer(name, fn, order, needs)
        return fn

    return wrap


def load_all() -> None:
    """Import every analyzer module (each registers itself)."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def run_analyzers(ctx: AnalysisContext) -> list[Skipped]:
    """Run every registered analyzer in order; return what was skipped and why."""
    load_all()
    skipped: list[Skipped] = []
    for a in sorted(_REGISTRY.values(), key=lambda a: (a.order, a.name)):
        missing = [n for n in a.needs if getattr(ctx, n, None) is None]
        if missing:
            skipped.append(Skipped(a.name, f"needs {', '.join(missing)}"))
            continue
        try:
            ctx.findings.extend(a.fn(ctx))
        except Skip as e:
            skipped.append(Skipped(a.name, str(e)))
        except Exception as e:  # an analyzer bug must not cost the user the rest of the report
            skipped.append(Skipped(a.name, f"internal error: {type(e).__name__}: {e}"))
    return skipped
