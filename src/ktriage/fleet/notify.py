"""Webhook notifications: a JSON POST when a bucket is created, regresses, or crosses 10/100/1000 crashes.

Events are queued after the transaction that caused them has committed (a rolled-back ingest announces
nothing) and sent by one background thread, off the request path: a slow or dead receiver never slows a
submission. The queue is bounded (an event that does not fit is logged, with its JSON, and dropped), each
event is tried a bounded number of times with a growing pause, and `close()` sends what is still queued
before it returns; what could not be sent by then is logged with its JSON, so nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from typing import Any

__all__ = ["THRESHOLDS", "Notifier", "post"]

THRESHOLDS = (10, 100, 1000)
TIMEOUT_S = 5.0  # one POST
QUEUE_SIZE = 1000  # events waiting to be sent
RETRIES = 3  # after the first attempt
BACKOFF_S = 0.5  # pause before the first retry, doubled each time
CLOSE_S = 30.0  # how long close() keeps sending what is queued

log = logging.getLogger("ktriage.fleet")
_STOP = object()


def post(url: str, event: dict[str, Any], timeout: float = TIMEOUT_S) -> str | None:
    """POST one event; None when the receiver accepted it (2xx), else why not (one line)."""
    body = json.dumps(event, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the operator's URL
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except (OSError, ValueError) as e:  # HTTPError (4xx/5xx), refused, timed out, bad URL
        return str(e) or type(e).__name__


class Notifier:
    """Sends webhook events from a background thread, started on the first event."""

    def __init__(
        self,
        url: str | None,
        *,
        maxsize: int = QUEUE_SIZE,
        retries: int = RETRIES,
        backoff: float = BACKOFF_S,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.sent = 0
        self.failed: list[dict[str, Any]] = []  # given up on (logged too)
        self._q: queue.Queue[Any] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._deadline = float("inf")

    def submit(self, events: list[dict[str, Any]]) -> None:
        """Queue events for sending; never waits for the receiver (a full queue drops and logs)."""
        if not self.url or not events:
            return
        if self._closing.is_set():
            for ev in events:
                self._give_up(ev, "the notifier is closed")
            return
        self._start()
        for ev in events:
            try:
                self._q.put_nowait(ev)
            except queue.Full:
                self._give_up(ev, f"the queue is full ({self._q.maxsize} events waiting)")

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event was sent or given up on; False if that took longer than timeout."""
        end = time.monotonic() + timeout
        with self._q.all_tasks_done:
            while self._q.unfinished_tasks:
                left = end - time.monotonic()
                if left <= 0 or not self._q.all_tasks_done.wait(left):
                    return not self._q.unfinished_tasks
        return True

    def close(self, timeout: float = CLOSE_S) -> None:
        """Send what is queued (retries included) for up to `timeout` seconds, then log what is left."""
        self._closing.set()
        if self._thread is None:
            return
        self._deadline = time.monotonic() + timeout
        self._thread_put_stop()
        self._thread.join(timeout + self.timeout)
        while True:  # the worker did not get to these in time
            try:
                ev = self._q.get_nowait()
            except queue.Empty:
                break
            if ev is not _STOP:
                self._give_up(ev, "not sent before shutdown")
            self._q.task_done()

    # ------------------------------------------------------------------------------ the worker

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ktriage-webhook", daemon=True)
                self._thread.start()

    def _thread_put_stop(self) -> None:
        try:
            self._q.put(_STOP, timeout=max(0.0, self._deadline - time.monotonic()))
        except queue.Full:
            pass  # the worker stops by the deadline anyway (see _deliver)

    def _run(self) -> None:
        while True:
            ev = self._q.get()
            try:
                if ev is _STOP:
                    return
                if time.monotonic() > self._deadline:
                    self._give_up(ev, "not sent before shutdown")
                else:
                    self._deliver(ev)
            finally:
                self._q.task_done()

    def _deliver(self, ev: dict[str, Any]) -> None:
        assert self.url
        why = ""
        for attempt in range(self.retries + 1):
            err = post(self.url, ev, self.timeout)
            if err is None:
                self.sent += 1
                return
            why = err
            pause = self.backoff * 2**attempt
            if attempt == self.retries or time.monotonic() + pause > self._deadline:
                break
            time.sleep(pause)
        self._give_up(ev, f"{why} (after {attempt + 1} attempt{'s' if attempt else ''})")

    def _give_up(self, ev: dict[str, Any], why: str) -> None:
        self.failed.append(ev)
        log.warning(
            "webhook %s: %s not delivered: %s: %s", self.url, ev.get("event"), why, json.dumps(ev, ensure_ascii=False)
        )
