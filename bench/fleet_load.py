#!/usr/bin/env python3
"""Load and fault benchmark of the fleet server: the real `ktriage fleet serve` on 127.0.0.1, over HTTP.

For each database (SQLite file, and a throwaway PostgreSQL cluster started like tests/fleetdb.py does):
1. N writers (threads, keep-alive connections) submit M reports. The reports are a mix of D distinct crashes:
   real crash texts (the lab's QEMU console logs in tests/fixtures/lab*, the shared crash texts, the syzkaller
   corpus in ../shared/corpora) each sent "from" several hosts with a crash time in the last 30 days; the
   same (text, host) sent again is the same crash, as a machine retrying or re-sending an overlapping log.
   Prints reports/s and p50/p99 latency, then checks the counts: the store holds exactly the distinct crashes
   that got a 202 (nothing lost), and no crash twice (nothing doubled).
2. Fault: new crashes are submitted, the server is killed with SIGKILL in the middle, restarted on the same
   database, and every crash that got a 202 before the kill is read back.

Bounded: stops after M reports (and a fixed number in the fault phase). Heavy: default M is 100,000; use
--reports for less.

    python bench/fleet_load.py [--reports 100000] [--writers 8] [--distinct 2000] [--db sqlite,postgresql]
                               [--body log|json] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ktriage.server.live import LiveServer

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KTRIAGE_SHARED", REPO.parent / "shared"))


# ------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Text:
    name: str
    log: bytes
    report: bytes  # the same crash as `ktriage analyze --format json` writes it (for --body json)


def _texts(limit: int) -> list[Text]:
    """Real crash texts that ktriage finds at least one crash in, analyzed once here (a client running ktriage)."""
    from ktriage.pipeline import Options, analyze_paths
    from ktriage.render.json_out import report_dict

    raw: list[tuple[str, bytes]] = []
    for d in sorted(REPO.glob("tests/fixtures/lab*")):
        raw += [(p.name, p.read_bytes()) for p in sorted(d.glob("*.console.log"))]
    raw += [(p.name, p.read_bytes()) for p in sorted((SHARED / "seeds").glob("[0-9][0-9][0-9]_*.txt"))]
    corpus = SHARED / "corpora" / "syzkaller"
    if corpus.is_dir():  # syzkaller report files: header lines, a blank line, the console log
        raw += [(f"syzkaller/{p.name}", p.read_bytes().partition(b"\n\n")[2]) for p in sorted(corpus.iterdir())]
    out: list[Text] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, log in raw:
            if len(out) >= limit:
                break
            path = Path(tmp) / "crash.log"
            path.write_bytes(log)
            report = report_dict(analyze_paths([str(path)], Options()))
            if report["crashes"]:
                out.append(Text(name, log, json.dumps(report).encode()))
    return out


@dataclass(frozen=True)
class Crash:
    """One distinct crash: a real text from one host at one time."""

    text: Text
    host: str
    seen: str


def _crashes(texts: list[Text], distinct: int, rng: random.Random, prefix: str) -> list[Crash]:
    now = datetime.now(timezone.utc)
    hosts = max(1, -(-distinct // len(texts)))
    out = []
    for i in range(distinct):
        t = texts[i % len(texts)]
        when = now - timedelta(seconds=rng.randrange(30 * 86400))
        out.append(Crash(t, f"{prefix}{i // len(texts):04d}.{i % hosts:03d}", when.isoformat(timespec="seconds")))
    return out


# ------------------------------------------------------------------------------------------------ server


def _start(server: LiveServer) -> None:
    """Start (or restart) the server; the benchmark stops with the log's tail if it does not come up."""
    try:
        server.start(timeout=90)
    except RuntimeError as e:
        sys.exit(f"fleet_load: {e}")


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------ load


@dataclass
class Outcome:
    index: int  # which distinct crash
    status: int  # 0: no reply (connection failed)
    seconds: float
    new_ids: list[int]  # crashes this submission stored
    all_ids: list[int]  # every crash id in the reply (new or already there)


class Writer:
    """One machine-like client: a keep-alive connection, reopened after an error."""

    def __init__(self, port: int, token: str, body: str) -> None:
        self.port, self.token, self.body = port, token, body
        self.conn: http.client.HTTPConnection | None = None

    def submit(self, index: int, crash: Crash) -> Outcome:
        data = crash.text.log if self.body == "log" else crash.text.report
        ctype = "text/plain" if self.body == "log" else "application/json"
        q = urllib.parse.urlencode({"host": crash.host, "seen": crash.seen})
        t0 = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request(
                "POST",
                f"/api/v1/reports?{q}",
                body=data,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": ctype},
            )
            r = self.conn.getresponse()
            reply = json.loads(r.read() or b"null")
            status = r.status
        except (OSError, http.client.HTTPException, ValueError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return Outcome(index, 0, time.perf_counter() - t0, [], [])
        dt = time.perf_counter() - t0
        if status != 202:
            return Outcome(index, status, dt, [], [])
        crashes = reply["crashes"]
        return Outcome(
            index, status, dt, [c["crash_id"] for c in crashes if not c["duplicate"]], [c["crash_id"] for c in crashes]
        )


def _run(
    port: int,
    token: str,
    crashes: list[Crash],
    order: list[int],
    writers: int,
    body: str,
    stop: threading.Event | None = None,
    progress: list[int] | None = None,
) -> tuple[list[Outcome], float]:
    lock = threading.Lock()
    it = iter(order)
    results: list[Outcome] = []

    def work() -> None:
        w = Writer(port, token, body)
        while stop is None or not stop.is_set():
            with lock:
                i = next(it, None)
            if i is None:
                return
            o = w.submit(i, crashes[i])
            with lock:
                results.append(o)
                if progress is not None and o.status == 202:
                    progress[0] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        for f in [pool.submit(work) for _ in range(writers)]:
            f.result()
    return results, time.perf_counter() - t0


def _store_total(port: int) -> tuple[int, int]:
    """(crashes counted in all buckets, buckets), read through the API page by page."""
    total = buckets = offset = 0
    while True:
        status, page = _request(port, "GET", f"/api/v1/buckets?limit=500&offset={offset}&sort=title&order=asc")
        assert status == 200, page
        total += sum(b["count"] for b in page["items"])
        buckets += len(page["items"])
        offset += 500
        if offset >= page["total"]:
            return total, buckets


def _pct(xs: list[float], p: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(p) - 1] if len(xs) > 1 else (xs or [0.0])[0]


def bench_db(kind: str, db_url: str, texts: list[Text], args: argparse.Namespace, workdir: Path) -> dict:
    rng = random.Random(args.seed)
    server = LiveServer(db_url, workdir / f"serve-{kind}.log")
    _start(server)
    token = server.token("bench")
    distinct = min(args.distinct, args.reports)
    crashes = _crashes(texts, distinct, rng, "host")
    order = list(range(distinct)) + [rng.randrange(distinct) for _ in range(args.reports - distinct)]
    rng.shuffle(order)
    results, elapsed = _run(server.port, token, crashes, order, args.writers, args.body)

    ok = [r for r in results if r.status == 202]
    lat = sorted(r.seconds * 1000 for r in ok)
    new_ids = [i for r in ok for i in r.new_ids]
    by_crash: dict[int, set[int]] = {}
    for r in ok:
        by_crash.setdefault(r.index, set()).update(r.all_ids)
    stored, nbuckets = _store_total(server.port)
    acked_ids = set().union(*by_crash.values()) if by_crash else set()
    out = {
        "db": kind,
        "reports": len(results),
        "writers": args.writers,
        "body": args.body,
        "distinct_crashes": distinct,
        "accepted_202": len(ok),
        "refused": {
            str(s): sum(1 for r in results if r.status == s) for s in sorted({r.status for r in results}) if s != 202
        },
        "seconds": round(elapsed, 1),
        "reports_per_s": round(len(ok) / elapsed, 1),
        "p50_ms": round(_pct(lat, 50), 1),
        "p99_ms": round(_pct(lat, 99), 1),
        "stored_new": len(new_ids),
        "buckets": nbuckets,
        "store_count": stored,
        # nothing doubled: no crash id was reported new twice, and every distinct crash maps to the same ids each time
        "nothing_doubled": len(new_ids) == len(set(new_ids)) and stored == len(new_ids),
        # nothing lost: every crash id any 202 named is counted in the store
        "nothing_lost": stored == len(acked_ids) and acked_ids == set(new_ids),
    }
    out.update(_kill_phase(server, token, texts, args, rng, stored))
    server.stop()
    return out


def _kill_phase(
    server: LiveServer, token: str, texts: list[Text], args: argparse.Namespace, rng: random.Random, before: int
) -> dict:
    """Distinct new crashes; SIGKILL once `kill_after` of them got a 202; restart; read every acknowledged one."""
    crashes = _crashes(texts, args.kill_reports, rng, "kill")
    stop, progress = threading.Event(), [0]
    runner = ThreadPoolExecutor(1)
    fut = runner.submit(
        _run, server.port, token, crashes, list(range(len(crashes))), args.writers, args.body, stop, progress
    )
    kill_after = args.kill_reports // 2
    while progress[0] < kill_after and not fut.done():
        time.sleep(0.01)
    server.kill9()
    stop.set()
    results, _ = fut.result()
    runner.shutdown()
    acked = {i for r in results if r.status == 202 for i in r.all_ids}
    unanswered = sum(1 for r in results if r.status == 0)
    _start(server)
    missing = [i for i in sorted(acked) if _request(server.port, "GET", f"/api/v1/crashes/{i}")[0] != 200]
    after, _ = _store_total(server.port)
    return {
        "kill_acked_before_kill": len(acked),
        "kill_unanswered": unanswered,
        "kill_missing_after_restart": len(missing),
        "kill_store_count_after": after,
        # every 202'd crash is there; at most the in-flight, unanswered ones were added besides
        "kill_ok": not missing and before + len(acked) <= after <= before + len(acked) + unanswered * 4,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=100_000, help="submissions in the load phase")
    ap.add_argument("--writers", type=int, default=8, help="concurrent writers")
    ap.add_argument("--distinct", type=int, default=2000, help="distinct crashes among the submissions")
    ap.add_argument("--kill-reports", type=int, default=1000, help="new crashes offered in the kill -9 phase")
    ap.add_argument("--texts", type=int, default=1000, help="at most this many real crash texts")
    ap.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument(
        "--body",
        choices=["log", "json"],
        default="log",
        help="send raw console logs (the server analyzes them) or ktriage.report/1 JSON",
    )
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    t0 = time.perf_counter()
    texts = _texts(args.texts)
    if not texts:
        sys.exit("fleet_load: no crash texts found (tests/fixtures/lab, ../shared)")
    print(f"{len(texts)} real crash texts ready in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ktriage-fleet-load-") as tmp:
        for kind in args.db.split(","):
            if kind == "sqlite":
                rows.append(bench_db(kind, f"sqlite:///{tmp}/fleet.db", texts, args, Path(tmp)))
            elif kind == "postgresql":
                sys.path.insert(0, str(REPO / "tests"))  # the tests' throwaway cluster (initdb + pg_ctl on 127.0.0.1)
                from fleetdb import PostgresServer

                pg = PostgresServer()
                try:
                    rows.append(bench_db(kind, pg.database(), texts, args, Path(tmp)))
                finally:
                    pg.stop()
            else:
                sys.exit(f"fleet_load: unknown database {kind!r}")
            print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'db':<11}{'reports':>8}{'distinct':>9}{'rep/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'stored':>8}{'buckets':>8}"
        f"  lost/doubled   kill -9: acked missing"
    )
    for r in rows:
        print(
            f"{r['db']:<11}{r['reports']:>8}{r['distinct_crashes']:>9}{r['reports_per_s']:>8}{r['p50_ms']:>8}"
            f"{r['p99_ms']:>8}{r['store_count']:>8}{r['buckets']:>8}  "
            f"{'none' if r['nothing_lost'] and r['nothing_doubled'] else 'FAILED':<13}  "
            f"{r['kill_acked_before_kill']:>7} {r['kill_missing_after_restart']:>7}"
            f"{'' if r['kill_ok'] else '  FAILED'}"
        )
    if not all(r["nothing_lost"] and r["nothing_doubled"] and r["kill_ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
