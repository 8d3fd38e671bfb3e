"""Webhook notifications: a JSON POST when a bucket is created, regresses, or crosses 10/100/1000 crashes.

Sent after the transaction that caused them has committed (a rolled-back ingest announces nothing), and a
receiver that is down or slow costs a log line, never the ingest.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

__all__ = ["THRESHOLDS", "send"]

THRESHOLDS = (10, 100, 1000)
TIMEOUT_S = 5.0

log = logging.getLogger("ktriage.fleet")


def send(url: str | None, events: list[dict[str, Any]]) -> int:
    """POST each event to `url`; returns how many were accepted (2xx). Failures are logged."""
    if not url:
        return 0
    sent = 0
    for ev in events:
        body = json.dumps(ev, ensure_ascii=False).encode()
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - the operator's URL
                if 200 <= resp.status < 300:
                    sent += 1
        except (OSError, ValueError) as e:
            log.warning("webhook %s: %s not delivered: %s", url, ev.get("event"), e)
    return sent
