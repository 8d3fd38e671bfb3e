"""Reading a submission's body with the size limit enforced while it streams in.

A 300 MB upload must be refused after `max_body` bytes, not after the server buffered all of it: the
limit is checked against Content-Length first (when the client sent one) and then on every chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

__all__ = ["BadBody", "Submission", "TooLarge", "read_submission"]


class TooLarge(Exception):
    """The body is above the server's limit (reply 413)."""


class BadBody(Exception):
    """The body cannot be taken apart (reply 400); the message is one line."""


@dataclass(frozen=True)
class Submission:
    data: bytes
    name: str  # the uploaded file's name, or "report" for a bare body
    host: str | None  # a multipart `host` field, when the client gave one


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes is above the limit of {limit} bytes")
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise TooLarge(f"body is above the limit of {limit} bytes")
        yield chunk


async def read_submission(request: Request, limit: int) -> Submission:
    """The report's bytes, from a bare body or from the first file part of a multipart form."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        buf = bytearray()
        async for chunk in _limited(request, limit):
            buf += chunk
        return Submission(bytes(buf), "report", None)
    parser = MultiPartParser(request.headers, _limited(request, limit), max_files=1, max_fields=8, max_part_size=4096)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise BadBody(f"multipart form: {e.message}") from None
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise BadBody("multipart form has no file part (send the log as a file field)")
        data = await files[0].read()
        host = form.get("host")
        return Submission(data, files[0].filename or "report", host if isinstance(host, str) and host else None)
    finally:
        await form.close()
