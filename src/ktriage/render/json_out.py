"""The JSON contract `ktriage.report/1` (schema: ktriage/schema/report-1.json).

Other tools consume this: fields are added, never renamed or retyped, within one schema version.
"""

from __future__ import annotations

import json
from typing import Any

from ktriage.model import Crash, CrashReport, Finding, Frame, InputRecord, Location, Report
from ktriage.verdict import compose


def _loc(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    return {"symbol": loc.symbol, "offset": loc.offset, "size": loc.size, "module": loc.module, "address": loc.address}


def _frame(f: Frame) -> dict[str, Any]:
    d = _loc(f) or {}
    d.update({"reliable": f.reliable, "section": f.section, "inline": f.inline})
    if f.interrupted:  # only when set: the PC an interrupt/exception stopped (exact, not a return address)
        d["interrupted"] = True
    return d


def _finding(f: Finding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "code": f.code,
        "summary": f.summary,
        "evidence": list(f.evidence),
        "confidence": f.confidence,
        "analyzer": f.analyzer,
    }
    if f.data:
        d["data"] = {k: v for k, v in f.data.items()}
    if f.listing:
        d["listing"] = list(f.listing)
    return d


def crash_dict(cr: CrashReport) -> dict[str, Any]:
    c: Crash = cr.crash
    code = None
    if c.code is not None:
        code = {
            "bytes": c.code.data.hex(),
            "trap_offset": c.code.trap_offset,
            "complete": c.code.complete,
            "raw": c.code.raw,
            "note": c.code.note,
        }
    return {
        "kind": c.kind,
        "title": c.title,
        "bucket": c.bucket,
        "guilty_frame": c.guilty_frame,
        "fault_address": c.fault_address,
        "access": c.access,
        "error_code": c.error_code,
        "ip": _loc(c.ip),
        "kernel": {
            "release": c.kernel.release,
            "build": c.kernel.build,
            "distro": c.kernel.distro,
            "hardware": c.kernel.hardware,
        },
        "arch": c.arch,
        "task": {"comm": c.task.comm, "pid": c.task.pid, "cpu": c.task.cpu},
        "context": c.context,
        "taint": {"flags": c.taint.flags, "decoded": list(c.taint.decoded)},
        "modules": list(c.modules),
        "registers": dict(c.registers),
        "code": code,
        "frames": [_frame(f) for f in c.frames],
        "panic": c.panic,
        "related_events": [{"kind": e.kind, "text": e.text, "line": e.line} for e in c.related_events],
        "corrupted": c.corrupted,
        "corrupted_reason": c.corrupted_reason,
        "system": dict(c.system),
        "source": {
            "path": c.source.path,
            "first_line": c.source.first_line,
            "last_line": c.source.last_line,
            "format": c.source.format,
        },
        "findings": [_finding(f) for f in cr.findings],
        "skipped": [{"analyzer": s.analyzer, "reason": s.reason} for s in cr.skipped],
        "known_bugs": [m.to_dict() if hasattr(m, "to_dict") else m for m in cr.known_bugs],
        "verdict": compose(cr).to_dict(),
    }


def _input(r: InputRecord) -> dict[str, Any]:
    return {
        "path": r.path,
        "format": r.format,
        "status": r.status,
        "error": r.error,
        "crashes": r.crashes,
        "notes": list(r.notes),
    }


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "schema": Report.SCHEMA,
        "inputs": [_input(i) for i in report.inputs],
        "crashes": [crash_dict(c) for c in report.crashes],
        "notes": list(report.notes),
    }


def render(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"
