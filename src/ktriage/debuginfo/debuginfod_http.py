"""debuginfod's HTTP side: a short connect timeout, a long read timeout, a download that lands whole or not
at all. Kept apart from `debuginfod` so that a run with nothing to fetch does not import http/ssl/email
(~15 ms at every start)."""

from __future__ import annotations

import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CONNECT_TIMEOUT = 10.0


# --- HTTP with a short connect timeout and a long read timeout -----------------------------------


class _ConnectFirst:
    """Connect (and TLS handshake) within `connect_timeout`, then read with the request's timeout."""

    timeout: float | None  # set by http.client.HTTPConnection, the class this is mixed into

    def __init__(self, *args, connect_timeout: float = CONNECT_TIMEOUT, **kw) -> None:
        super().__init__(*args, **kw)
        self.connect_timeout = connect_timeout

    def connect(self) -> None:
        read_timeout = self.timeout
        self.timeout = min(self.connect_timeout, read_timeout) if read_timeout else self.connect_timeout
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self.timeout = read_timeout
        self.sock.settimeout(read_timeout)  # type: ignore[attr-defined]


class _HTTPConnection(_ConnectFirst, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ConnectFirst, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    connect_timeout = CONNECT_TIMEOUT

    def http_open(self, req):
        return self.do_open(_HTTPConnection, req, connect_timeout=self.connect_timeout)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    connect_timeout = CONNECT_TIMEOUT

    def https_open(self, req):
        return self.do_open(
            _HTTPSConnection, req, context=getattr(self, "_context", None), connect_timeout=self.connect_timeout
        )


def opener(connect_timeout: float) -> urllib.request.OpenerDirector:
    http_h, https_h = _HTTPHandler(), _HTTPSHandler()
    http_h.connect_timeout = https_h.connect_timeout = connect_timeout
    return urllib.request.build_opener(http_h, https_h)


def download(
    opener: urllib.request.OpenerDirector,
    url: str,
    target: Path,
    timeout: float,
    maxtime: float | None,
    maxsize: float | None,
    user_agent: str,
    chunk_size: int,
) -> tuple[str, str | None]:
    """(what happened, temporary file holding the whole body or None)."""
    start = time.monotonic()
    req = urllib.request.Request(url, headers={"User-Agent": user_agent})
    tmp: str | None = None
    try:
        with opener.open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if maxsize and length and length.isdigit() and int(length) > maxsize:
                return f"not fetched: {int(length)} bytes > DEBUGINFOD_MAXSIZE {int(maxsize)}", None
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".debuginfo.", suffix=".part", dir=target.parent)
            n = 0
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = resp.read(chunk_size)
                    if not chunk:
                        break
                    n += len(chunk)
                    f.write(chunk)
                    if maxsize and n > maxsize:
                        raise _Abort(f"aborted: more than DEBUGINFOD_MAXSIZE {int(maxsize)} bytes")
                    if maxtime and time.monotonic() - start > maxtime:
                        raise _Abort(f"aborted: DEBUGINFOD_MAXTIME {maxtime:g} s exceeded")
            if length and length.isdigit() and n != int(length):
                raise _Abort(f"incomplete: {n} of {length} bytes")
            secs = time.monotonic() - start
            done, tmp = tmp, None
            return f"fetched {n} bytes in {secs:.1f} s", done
    except urllib.error.HTTPError as e:
        return (f"{e.code} {e.reason}" + (" (the server does not have it)" if e.code == 404 else "")), None
    except _Abort as e:
        return str(e), None
    except TimeoutError:
        return f"timed out (DEBUGINFOD_TIMEOUT {timeout:g} s) after {time.monotonic() - start:.1f} s", None
    except urllib.error.URLError as e:
        r = e.reason
        if isinstance(r, (socket.timeout, TimeoutError)):
            return f"timed out connecting after {time.monotonic() - start:.1f} s", None
        return f"unreachable: {r}", None
    except (OSError, http.client.HTTPException, ValueError) as e:
        return f"failed: {type(e).__name__}: {e}", None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


class _Abort(Exception):
    pass
