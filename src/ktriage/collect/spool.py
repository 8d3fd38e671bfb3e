"""The outbox: every report is written here before it is sent, and leaves only once the server took it.

Reports wait in `outbox/` under names that sort in the order they were made, and are sent in that order:
a fleet server sees a machine's crashes as they happened, even after an outage. When the server cannot be
reached the collector waits between attempts, doubling the wait each time (`base`, 2x`base`, ... up to
`cap`), and remembers the next attempt time in `backoff.json`, so runs started by a timer or at the next boot
keep backing off too. A report the server refuses as such (400 unreadable, 413 too large) moves to
`rejected/` with the reason beside it: resending it would fail forever and block the queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ktriage.collect.state import StateError, atomic_write

__all__ = ["Backoff", "FlushResult", "SendResult", "Spool"]


@dataclass(frozen=True)
class SendResult:
    """How one submission went. `status`: sent | retry (try later) | refused (token) | rejected (never)."""

    status: str
    detail: str = ""
    reply: dict[str, Any] | None = None


@dataclass
class Backoff:
    base: float = 30.0
    cap: float = 6 * 3600.0
    failures: int = 0
    next_attempt: float = 0.0

    def failed(self, now: float) -> float:
        """Count one more failure; returns the wait before the next attempt."""
        self.failures += 1
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        self.next_attempt = now + delay
        return delay


@dataclass
class FlushResult:
    sent: list[tuple[dict[str, Any], SendResult]] = field(default_factory=list)
    rejected: list[tuple[dict[str, Any], SendResult]] = field(default_factory=list)
    waiting: int = 0  # still in the outbox
    stopped: str | None = None  # why sending stopped (unreachable, token refused, backing off)


class Spool:
    def __init__(self, root: str, base: float = 30.0, cap: float = 6 * 3600.0) -> None:
        self.root = root
        self.outbox = os.path.join(root, "outbox")
        self.rejected_dir = os.path.join(root, "rejected")
        self.backoff_path = os.path.join(root, "backoff.json")
        self.base, self.cap = base, cap

    # --- the queue ------------------------------------------------------------------------------

    def entries(self) -> list[str]:
        try:
            return sorted(os.path.join(self.outbox, n) for n in os.listdir(self.outbox) if n.endswith(".json"))
        except FileNotFoundError:
            return []

    def keys(self) -> set[str]:
        """The dump keys already waiting (a run interrupted between spooling and recording state)."""
        out = set()
        for p in self.entries():
            with contextlib.suppress(OSError, ValueError):
                with open(p, "rb") as f:
                    out.add(json.load(f).get("key", ""))
        return out

    def put(self, envelope: dict[str, Any]) -> str:
        """Queue one report behind the others. Raises StateError (full disk) with a one-line reason."""
        seq = time.time_ns()
        last = self.entries()
        if last:
            with contextlib.suppress(ValueError):
                seq = max(seq, int(os.path.basename(last[-1]).split("-")[0]) + 1)
        tag = hashlib.sha256(envelope.get("key", "").encode()).hexdigest()[:12]
        path = os.path.join(self.outbox, f"{seq:020d}-{tag}.json")
        atomic_write(path, json.dumps(envelope, ensure_ascii=False).encode())
        return path

    def _load(self, path: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as f:
                env = json.load(f)
            return env if isinstance(env, dict) and isinstance(env.get("report"), dict) else None
        except (OSError, ValueError):
            return None

    def _reject(self, path: str, reason: str) -> None:
        os.makedirs(self.rejected_dir, mode=0o700, exist_ok=True)
        dest = os.path.join(self.rejected_dir, os.path.basename(path))
        os.replace(path, dest)
        atomic_write(dest[: -len(".json")] + ".reason.txt", (reason + "\n").encode())

    # --- backoff --------------------------------------------------------------------------------

    def backoff(self) -> Backoff:
        b = Backoff(self.base, self.cap)
        with contextlib.suppress(OSError, ValueError, TypeError):
            with open(self.backoff_path, "rb") as f:
                d = json.load(f)
            b.failures, b.next_attempt = int(d["failures"]), float(d["next_attempt"])
        return b

    def _save_backoff(self, b: Backoff) -> None:
        if b.failures == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.backoff_path)
            return
        atomic_write(self.backoff_path, json.dumps({"failures": b.failures, "next_attempt": b.next_attempt}).encode())

    # --- sending --------------------------------------------------------------------------------

    def flush(
        self,
        send: Callable[[dict[str, Any]], SendResult],
        *,
        retry_for: float = 0.0,
        force: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> FlushResult:
        """Send the outbox in order. Within `retry_for` seconds, waits and retries with backoff; past it,
        stops and leaves the rest for a later run (which waits for `next_attempt` unless `force`)."""
        res = FlushResult()
        entries = self.entries()
        b = self.backoff()
        if not entries:
            if b.failures:
                self._save_backoff(Backoff(self.base, self.cap))
            return res
        start = clock()
        if not force and b.next_attempt > start:
            res.waiting = len(entries)
            res.stopped = (
                f"backing off after {b.failures} failed attempt(s); next attempt after "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(b.next_attempt))} (--retry-now to try now)"
            )
            return res
        deadline = start + retry_for
        for i, path in enumerate(entries):
            env = self._load(path)
            if env is None:
                self._reject(path, "unreadable spool entry")
                continue
            while True:
                r = send(env)
                if r.status == "sent":
                    res.sent.append((env, r))
                    os.unlink(path)
                    if b.failures:
                        b = Backoff(self.base, self.cap)
                        self._save_backoff(b)
                    break
                if r.status == "rejected":
                    res.rejected.append((env, r))
                    self._reject(path, r.detail)
                    break
                delay = b.failed(clock())
                try:
                    self._save_backoff(b)
                except StateError:
                    pass  # the wait still happens in this run; only its memory across runs is lost
                if r.status == "refused" or clock() + delay > deadline:
                    res.waiting = len(entries) - i
                    res.stopped = r.detail
                    return res
                sleep(delay)
        return res
