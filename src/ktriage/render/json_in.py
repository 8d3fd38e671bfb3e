"""Read `ktriage.report/1` JSON back into the model: the inverse of `render/json_out.report_dict`.

The fleet store keeps reports as JSON and renders them later (the dashboard, `fleet show`) with the same
renderers `ktriage analyze` uses; rebucketing re-derives bucket ids and known bugs from them. So this must
give back exactly what was written: `report_dict(report_from_dict(d)) == d` for every report ktriage
writes (tested on real reports). Fields the JSON does not carry (`Crash.lines`, `CodeBytes.arch`) come
back empty or from the crash (its arch).
"""

from __future__ import annotations

from typing import Any

from ktriage.model import (
    CodeBytes,
    Crash,
    CrashReport,
    Event,
    Finding,
    Frame,
    InputRecord,
    Kernel,
    Location,
    Report,
    Skipped,
    SourceSpan,
    Taint,
    Task,
)

__all__ = ["ReportFormatError", "crash_from_dict", "crash_report_from_dict", "report_from_dict"]


class ReportFormatError(ValueError):
    """A JSON document that is not a `ktriage.report/1` report ktriage can read back; one line."""


def _loc(d: dict[str, Any] | None) -> Location | None:
    if d is None:
        return None
    return Location(d.get("symbol"), d.get("offset"), d.get("size"), d.get("module"), d.get("address"))


def _frame(d: dict[str, Any]) -> Frame:
    return Frame(
        d.get("symbol"),
        d.get("offset"),
        d.get("size"),
        d.get("module"),
        d.get("address"),
        reliable=bool(d.get("reliable", True)),
        section=d.get("section", "task"),
        inline=bool(d.get("inline", False)),
        interrupted=bool(d.get("interrupted", False)),
    )


def _code(d: dict[str, Any] | None, arch: str | None) -> CodeBytes | None:
    if d is None:
        return None
    return CodeBytes(
        data=bytes.fromhex(d.get("bytes") or ""),
        trap_offset=d.get("trap_offset"),
        arch=arch or "",
        complete=bool(d.get("complete", True)),
        raw=d.get("raw") or "",
        note=d.get("note"),
    )


def _finding(d: dict[str, Any]) -> Finding:
    return Finding(
        code=d["code"],
        summary=d["summary"],
        evidence=tuple(d.get("evidence") or ()),
        confidence=d.get("confidence", "medium"),
        analyzer=d.get("analyzer", ""),
        data=dict(d.get("data") or {}),
        listing=tuple(d.get("listing") or ()),
    )


def _known_bug(d: dict[str, Any]) -> Any:
    """A KB match as `kb.Match` (so renderers show it as `analyze` did), a note as `kb.KBNote`;
    anything else is kept as the dict it was (json_out writes dicts through unchanged)."""
    kind = d.get("kind")
    if kind == "note":
        from ktriage.kb.match import KBNote

        return KBNote(str(d.get("note", "")))
    if kind not in ("match", "similar"):
        return dict(d)
    from ktriage.kb.match import Match

    rule = d.get("rule") or {}
    return Match(
        rule_id=d["id"],
        title=d.get("title", ""),
        status=d.get("status", ""),
        score=float(d.get("score", 0.0)),
        similar=bool(d.get("similar", kind == "similar")),
        matched=list(d.get("matched") or []),
        missed=list(d.get("missed") or []),
        fixed_in_this_kernel=d.get("fixed_in_this_kernel", "unknown"),
        fixed_reason=d.get("fixed_reason", ""),
        fixed_basis=d.get("fixed_basis", ""),
        fix=dict(d.get("fix") or {}),
        distros=[dict(x) for x in d.get("distros") or []],
        cve=list(d.get("cve") or []),
        workarounds=[dict(w) for w in d.get("workarounds") or []],
        probe=dict(d.get("probe") or {}),
        references=list(d.get("references") or []),
        summary=d.get("summary", ""),
        subsystem=d.get("subsystem", ""),
        rule_path=rule.get("path", ""),
        rule_origin=rule.get("origin", ""),
    )


def crash_from_dict(d: dict[str, Any]) -> Crash:
    """The Crash of one entry of a report's `crashes` list."""
    k = d.get("kernel") or {}
    t = d.get("task") or {}
    taint = d.get("taint") or {}
    src = d.get("source") or {}
    arch = d.get("arch")
    return Crash(
        kind=d["kind"],
        title=d["title"],
        source=SourceSpan(
            src.get("path", ""), src.get("first_line", 0), src.get("last_line", 0), src.get("format", "log")
        ),
        guilty_frame=d.get("guilty_frame"),
        fault_address=d.get("fault_address"),
        access=d.get("access"),
        error_code=d.get("error_code"),
        ip=_loc(d.get("ip")),
        kernel=Kernel(k.get("release"), k.get("build"), k.get("distro"), k.get("hardware")),
        arch=arch,
        task=Task(t.get("comm"), t.get("pid"), t.get("cpu")),
        context=d.get("context", "unknown"),
        taint=Taint(taint.get("flags", ""), tuple(taint.get("decoded") or ())),
        modules=tuple(d.get("modules") or ()),
        registers=dict(d.get("registers") or {}),
        code=_code(d.get("code"), arch),
        frames=tuple(_frame(f) for f in d.get("frames") or ()),
        panic=d.get("panic"),
        related_events=tuple(Event(e["kind"], e["text"], e.get("line")) for e in d.get("related_events") or ()),
        corrupted=bool(d.get("corrupted", False)),
        corrupted_reason=d.get("corrupted_reason"),
        bucket=d.get("bucket", ""),
        system=dict(d.get("system") or {}),
    )


def crash_report_from_dict(d: dict[str, Any]) -> CrashReport:
    return CrashReport(
        crash=crash_from_dict(d),
        findings=[_finding(f) for f in d.get("findings") or ()],
        skipped=[Skipped(s["analyzer"], s["reason"]) for s in d.get("skipped") or ()],
        known_bugs=[_known_bug(m) for m in d.get("known_bugs") or ()],
    )


def _input(d: dict[str, Any]) -> InputRecord:
    return InputRecord(
        path=d["path"],
        format=d.get("format", "unknown"),
        status=d.get("status", "ok"),
        error=d.get("error"),
        crashes=int(d.get("crashes", 0)),
        notes=list(d.get("notes") or []),
    )


def report_from_dict(d: dict[str, Any]) -> Report:
    """A Report from a `ktriage.report/1` dict; ReportFormatError (one line) for anything else."""
    if not isinstance(d, dict):
        raise ReportFormatError("not a ktriage report: the JSON is not an object")
    if d.get("schema") != Report.SCHEMA:
        raise ReportFormatError(f"not a ktriage report: schema is {d.get('schema')!r}, expected {Report.SCHEMA!r}")
    try:
        return Report(
            inputs=[_input(i) for i in d.get("inputs") or ()],
            crashes=[crash_report_from_dict(c) for c in d.get("crashes") or ()],
            notes=list(d.get("notes") or []),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReportFormatError(f"malformed ktriage report: {type(e).__name__}: {e}") from None
