"""One collector run: find, analyze what is new, queue, send; then say what happened and exit accordingly.

Exit status (README, "Collecting crashes from machines"):
  0  everything found was handled: analyzed and sent/stored (or nothing new)
  2  usage error (bad option, unreadable config, no fleet store for --db)
  3  something could not be handled: a dump that cannot be read (its dmesg was reported instead, if any),
     a full disk, a report the server rejected; the rest was handled
  4  reports wait in the spool (server unreachable or the token refused); a later run sends them
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ktriage import __version__
from ktriage.collect.analyze import Analysis, analyze_files
from ktriage.collect.sources import Found, discover
from ktriage.collect.spool import SendResult, Spool
from ktriage.collect.state import State, StateError
from ktriage.pipeline import Options

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_SPOOLED", "CollectConfig", "collect"]

EXIT_OK, EXIT_FAILED, EXIT_SPOOLED = 0, 3, 4


@dataclass
class CollectConfig:
    crash_dirs: list[str]
    pstore_dirs: list[str]
    journal: bool
    spool: str
    state: str
    host: str
    send: Callable[[dict[str, Any]], SendResult] | None = None  # None: keep reports in the spool
    dry_run: bool = False
    retry_for: float = 0.0
    retry_now: bool = False
    backoff_base: float = 30.0
    tmp_dir: str | None = None
    settle: float = 600.0
    options: Options = field(default_factory=Options)


def _title(report: dict[str, Any]) -> str:
    titles = [c["title"] for c in report["crashes"]]
    more = f" (+{len(titles) - 1} more)" if len(titles) > 1 else ""
    return (titles[-1] if titles else "no crash") + more


def _analyze(f: Found, cfg: CollectConfig) -> Analysis:
    if f.text is None:
        return analyze_files(f.dump, f.dmesg, cfg.options, compression=f.compression, tmp_root=cfg.tmp_dir)
    tmpdir = tempfile.mkdtemp(prefix="ktriage-collect-", dir=cfg.tmp_dir)
    try:
        path = os.path.join(tmpdir, "journal.export" if f.source == "journal" else "pstore-dmesg.txt")
        with open(path, "wb") as fh:
            fh.write(f.text)
        a = analyze_files(None, path, cfg.options)
        if a.report:
            from ktriage.collect.analyze import _rename_paths

            _rename_paths(a.report, path, f.what)
        return a
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _envelope(f: Found, cfg: CollectConfig, report: dict[str, Any]) -> dict[str, Any]:
    report["collected"] = {
        "host": cfg.host,
        "source": f.source,
        "what": f.what,
        "collector": f"ktriage collect {__version__}",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {"key": f.key, "what": f.what, "source": f.source, "host": cfg.host, "seen": f.seen, "report": report}


def _reply_line(r: SendResult) -> str:
    crashes = (r.reply or {}).get("crashes") or (r.reply or {}).get("results") or []
    parts = []
    for c in crashes if isinstance(crashes, list) else []:
        if isinstance(c, dict):
            bucket = c.get("bucket") or c.get("bucket_id")
            new = c.get("new", c.get("bucket_new"))
            parts.append(f"bucket {bucket}{' (new)' if new else ''}")
    return "; ".join(parts) or r.detail


def collect(cfg: CollectConfig, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    failed = False

    def problem(msg: str) -> None:
        nonlocal failed
        failed = True
        print(f"ktriage collect: {msg}", file=err)

    state = State(cfg.state)
    if state.note:
        print(f"ktriage collect: {state.note}", file=err)
    spool = Spool(cfg.spool, base=cfg.backoff_base)
    queued = spool.keys()
    for f in discover(cfg.crash_dirs, cfg.pstore_dirs, cfg.journal, cfg.settle):
        if f.skip:
            print(f"skipped  {f.what}: {f.skip}", file=out)
            if f.key and not cfg.dry_run and f.key not in state:
                try:
                    state.mark(f.key, f.what, "incomplete", reason=f.skip)
                except StateError as e:
                    problem(str(e))
            continue
        if f.key in state or f.key in queued:
            continue
        try:
            a = _analyze(f, cfg)
        except Exception as e:  # noqa: BLE001 - one crash's bug must not cost the others
            problem(f"{f.what}: internal error while analyzing ({type(e).__name__}: {e}); rerun with --debug")
            continue
        for p in a.problems:
            problem(p)
        if not a.report or not a.crashes:
            print(f"nothing  {f.what}: no crash found", file=out)
            result = "no crash"
        else:
            print(f"found    {f.what} ({f.source}): {_title(a.report)}", file=out)
            result = "queued"
        if cfg.dry_run:
            continue
        try:
            if a.report and a.crashes:
                spool.put(_envelope(f, cfg, a.report))
            if a.report or not a.problems:
                state.mark(f.key, f.what, result)
        except StateError as e:
            problem(f"{e} ({f.what} will be analyzed again next time)")
    if cfg.dry_run:
        return EXIT_FAILED if failed else EXIT_OK
    waiting = len(spool.entries())
    if cfg.send is None:
        if waiting:
            print(f"kept     {waiting} report(s) in {spool.outbox} (no --submit or --db given)", file=out)
        return EXIT_FAILED if failed else EXIT_OK
    try:
        fr = spool.flush(cfg.send, retry_for=cfg.retry_for, force=cfg.retry_now)
    except StateError as e:
        problem(str(e))
        return EXIT_FAILED
    for env, r in fr.sent:
        print(f"sent     {env['what']}: {_reply_line(r)}", file=out)
    for env, r in fr.rejected:
        problem(f"{env['what']}: rejected: {r.detail} (kept in {spool.rejected_dir})")
    if fr.waiting:
        print(f"spooled  {fr.waiting} report(s) in {spool.outbox}: {fr.stopped}", file=err)
    if failed:
        return EXIT_FAILED
    return EXIT_SPOOLED if fr.waiting else EXIT_OK
