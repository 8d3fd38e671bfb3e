"""Bad requests get a 4xx with a one-line reason, never a traceback, and the server keeps serving."""

from __future__ import annotations

import json

import pytest
from server_inputs import MAX_BODY, lab_log


def _one_line_reason(r) -> str:  # noqa: ANN001
    body = r.json()
    assert set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert "Traceback" not in r.text and 'File "' not in r.text
    return detail


def _still_serving(client) -> None:  # noqa: ANN001
    assert client.get("/api/v1/buckets").status_code == 200


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "bearer"],
    ids=["none", "empty-bearer", "unknown-secret", "basic", "no-secret"],
)
def test_submission_needs_a_valid_token(client, header) -> None:  # noqa: ANN001
    headers = {"Authorization": header} if header else {}
    r = client.post("/api/v1/reports", content=lab_log("bug-on"), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "token" in _one_line_reason(r)
    assert client.get("/api/v1/buckets").json()["total"] == 0  # nothing stored


def test_revoked_token_is_refused(client, app, auth) -> None:  # noqa: ANN001
    app.state.store.revoke_token("test-machine")
    r = client.post("/api/v1/reports", content=lab_log("bug-on"), headers=auth)
    assert r.status_code == 401


def test_body_above_the_limit_is_413(client, auth) -> None:  # noqa: ANN001
    big = lab_log("bug-on") * (MAX_BODY // len(lab_log("bug-on")) + 2)
    assert len(big) > MAX_BODY
    r = client.post("/api/v1/reports", content=big, headers=auth)
    assert r.status_code == 413
    assert str(MAX_BODY) in _one_line_reason(r)
    _still_serving(client)


def test_limit_holds_without_content_length(client, auth) -> None:  # noqa: ANN001
    """A chunked upload declares no size: the limit is counted on the stream (that the server stops reading
    early is checked against the real server in test_server_live.py; the test client buffers the body)."""

    def chunks():  # noqa: ANN202
        for _ in range(64):  # 4 MiB offered in 64 KiB chunks, the limit is 1 MiB
            yield b"x" * 65536

    r = client.post("/api/v1/reports", content=chunks(), headers=auth)
    assert r.status_code == 413
    _one_line_reason(r)
    _still_serving(client)


def test_multipart_above_the_limit_is_413(client, auth) -> None:  # noqa: ANN001
    r = client.post("/api/v1/reports", files={"file": ("big.log", b"\0" * (MAX_BODY + 10))}, headers=auth)
    assert r.status_code == 413
    _one_line_reason(r)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n\n",
        b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8,  # an ELF file, not a log
        bytes(range(256)) * 64,  # binary noise
        b"\x89PNG\r\n\x1a\n" + b"\0" * 4000,
        b"just some words, no kernel in them\nanother line\n",
        b'{"schema": "ktriage.report/1", "crashes": [',  # truncated JSON
        b'{"schema": "ktriage.report/1", "crashes": [{"kind": 5}]}',  # JSON of the wrong shape
        b'{"schema": "ktriage.report/999", "crashes": []}',
        b"[1, 2, 3]",
    ],
    ids=[
        "empty",
        "blank",
        "elf",
        "noise",
        "png",
        "no-crash",
        "truncated-json",
        "bad-report",
        "bad-schema",
        "json-list",
    ],
)
def test_unreadable_bodies_are_400_with_a_reason(client, auth, body: bytes) -> None:  # noqa: ANN001
    r = client.post("/api/v1/reports", content=body, headers=auth)
    assert r.status_code == 400, r.text
    _one_line_reason(r)
    _still_serving(client)
    # and a good report right after is still taken
    assert client.post("/api/v1/reports", content=lab_log("warn"), headers=auth).status_code == 202


def test_multipart_without_a_file_is_400(client, auth) -> None:  # noqa: ANN001
    r = client.post(
        "/api/v1/reports",
        content=b"--xx\r\nContent-Disposition: form-data; name=host\r\n\r\nweb-1\r\n--xx--\r\n",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=xx"},
    )
    assert r.status_code == 400
    assert "file" in _one_line_reason(r)


def test_bad_query_parameters_are_one_line(client) -> None:  # noqa: ANN001
    r = client.get("/api/v1/buckets?limit=banana")
    assert r.status_code == 422
    assert "limit" in _one_line_reason(r)
    r = client.get("/api/v1/buckets?since=last-tuesday")
    assert r.status_code == 400
    assert "since" in _one_line_reason(r)
    assert client.get("/api/v1/crashes/not-a-number").status_code == 422


def test_unknown_ids_are_404(client) -> None:  # noqa: ANN001
    assert client.get("/api/v1/buckets/0000000000000000").status_code == 404
    assert client.get("/api/v1/buckets/0000000000000000/crashes").status_code == 404
    r = client.get("/api/v1/crashes/999999")
    assert r.status_code == 404
    _one_line_reason(r)
    page = client.get("/buckets/0000000000000000", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]


def test_internal_error_is_a_one_line_500(client, app, monkeypatch) -> None:  # noqa: ANN001
    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError('database on fire\n  File "/x.py", line 1')

    monkeypatch.setattr(app.state.store, "list_buckets", boom)
    r = client.get("/api/v1/buckets")
    assert r.status_code == 500
    detail = _one_line_reason(r)
    assert "on fire" not in detail  # internal details stay in the server log
    monkeypatch.undo()
    _still_serving(client)


def test_openapi_describes_the_api(client) -> None:  # noqa: ANN001
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/reports",
        "/api/v1/buckets",
        "/api/v1/buckets/{bucket_id}",
        "/api/v1/buckets/{bucket_id}/crashes",
        "/api/v1/crashes/{crash_id}",
    ):
        assert path in spec["paths"], path
    post = spec["paths"]["/api/v1/reports"]["post"]
    assert {"202", "400", "401", "413"} <= set(post["responses"])
    assert json.dumps(spec).count("HTTPBearer") >= 1
    # FastAPI's own /docs and /redoc pages fetch their scripts from a CDN: not served
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
