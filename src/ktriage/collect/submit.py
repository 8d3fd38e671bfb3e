"""Where reports go: a fleet server over HTTP, or a fleet database opened directly.

HTTP uses only the standard library (urllib), so `pip install ktriage` is enough on the machines; the
fleet store (SQLAlchemy) is imported only for `--db`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ktriage import __version__
from ktriage.collect.spool import SendResult
from ktriage.inputs import InputError

__all__ = ["DbTarget", "HttpTarget", "reports_url"]

API_PATH = "/api/v1/reports"
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def reports_url(url: str) -> str:
    """The server's base URL or the full endpoint, both accepted."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"--submit {url}: not an http(s) URL")
    path = u.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path, u.query, ""))


def _reason(body: bytes) -> str:
    """The server's one-line reason (FastAPI's {"detail": ...}) or the start of its body."""
    text = body.decode("utf-8", "replace")
    try:
        d = json.loads(text)
        if isinstance(d, dict) and "detail" in d:
            text = d["detail"] if isinstance(d["detail"], str) else json.dumps(d["detail"])
    except ValueError:
        pass
    return " ".join(text.split())[:200]


class HttpTarget:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = reports_url(url)
        self.token = token
        self.timeout = timeout

    def __call__(self, env: dict[str, Any]) -> SendResult:
        body = json.dumps(env["report"], ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            "User-Agent": f"ktriage-collect/{__version__}",
        }
        # the fleet server takes the machine and the time of the crash as query parameters
        query = urllib.parse.urlencode({k: env[k] for k in ("host", "seen") if env.get(k)})
        url = self.url + ("&" if "?" in self.url else "?") + query if query else self.url
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only, checked
                data = resp.read()
                try:
                    reply = json.loads(data) if data else None
                except ValueError:
                    reply = None
                return SendResult("sent", f"HTTP {resp.status}", reply if isinstance(reply, dict) else None)
        except urllib.error.HTTPError as e:
            why = f"{self.url}: HTTP {e.code}: {_reason(e.read())}"
            if e.code in (401, 403):
                return SendResult("refused", why + " (check the token)")
            if e.code in RETRY_STATUS:
                return SendResult("retry", why)
            return SendResult("rejected", why)
        except (TimeoutError, urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return SendResult("retry", f"{self.url}: unreachable ({reason})")


class DbTarget:
    """A fleet database (SQLite file or PostgreSQL URL) written directly, as `ktriage fleet ingest` does."""

    def __init__(self, url: str) -> None:
        import importlib

        try:  # imported by name: the fleet store is an optional part (SQLAlchemy), typed on its own side
            store_cls: Any = importlib.import_module("ktriage.fleet").FleetStore
        except (ImportError, AttributeError) as e:
            raise ValueError(f"--db needs ktriage's fleet store, which is not installed here ({e})") from None
        self.store_cls, self.url = store_cls, url
        self.store: Any = None

    def __call__(self, env: dict[str, Any]) -> SendResult:
        try:
            if self.store is None:  # opened on first use: a database that is down keeps reports spooled
                self.store = self.store_cls.open(self.url)
            results = self.store.ingest_report(env["report"], host=env.get("host"), origin="collect")
        except (InputError, ValueError, KeyError, TypeError) as e:  # the report itself: resending cannot help
            return SendResult("rejected", f"database: the report was refused: {' '.join(str(e).split())[:200]}")
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors: the database is down or locked; retry later
            return SendResult("retry", f"database: {' '.join(str(e).split())[:200]}")
        reply = {
            "crashes": [
                {"bucket": r.bucket_id, "new": r.bucket_new, "duplicate": r.duplicate, "title": r.title}
                for r in results
            ]
        }
        return SendResult("sent", "stored", reply)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
