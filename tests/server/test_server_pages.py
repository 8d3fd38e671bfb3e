"""The dashboard pages, rendered by the server from the real store (the browser test drives them in Chromium)."""

from __future__ import annotations

import html
import re

from server_inputs import XSS, lab_log, with_comm


def _post(client, auth, body: bytes, host: str) -> dict:  # noqa: ANN001
    r = client.post("/api/v1/reports", content=body, headers=auth, params={"host": host})
    assert r.status_code == 202, r.text
    return r.json()["crashes"][0]


def test_buckets_table_sorts_and_filters(client, auth) -> None:  # noqa: ANN001
    for host in ("a", "b", "c"):
        _post(client, auth, lab_log("warn"), host)
    _post(client, auth, lab_log("bug-on"), "a")
    page = client.get("/?sort=count").text
    rows = re.findall(r'class="bucket-link" href="/buckets/[^"]+">([^<]+)</a>', page)
    assert rows == ["WARNING in crashmod_warn", "kernel BUG in crashmod_check_state"]
    asc = client.get("/?sort=count&order=asc").text
    assert re.findall(r'class="bucket-link"[^>]*>([^<]+)<', asc) == rows[::-1]
    only_bug = client.get("/?kind=bug").text
    assert "crashmod_check_state" in only_bug and "crashmod_warn" not in only_bug
    assert "2 buckets" in page and "1 bucket" in only_bug
    assert client.get("/?view=growing").status_code == 200
    assert "new this week" in client.get("/?view=new").text


def test_bucket_page_has_chart_kernels_and_report(client, auth) -> None:  # noqa: ANN001
    c = _post(client, auth, lab_log("uaf-poison"), "web-1")
    _post(client, auth, lab_log("uaf-poison"), "web-2")
    page = client.get(f"/buckets/{c['bucket_id']}").text
    assert "general protection fault in crashmod_obj_dispatch" in page
    assert re.search(r'<svg class="chart"[^>]*>.*<rect class="bar"', page, re.S)
    kern = re.search(r'<table id="per-kernel".*?</table>', page, re.S)
    assert kern and "<code>6.1.192</code>" in kern.group(0) and '<td class="num">2</td>' in kern.group(0)
    assert "web-1" in page and "web-2" in page
    rep = re.search(r'<section id="representative".*?</article>', page, re.S)  # the embedded post-mortem
    assert rep
    assert "Call trace" in rep.group(0) and "crashmod_obj_dispatch" in rep.group(0)


def test_crash_page_is_the_html_post_mortem(client, auth) -> None:  # noqa: ANN001
    """The crash page embeds the document `ktriage analyze --format html` writes: verdict first, then the rest."""
    c = _post(client, auth, lab_log("soft-lockup"), "h")
    page = client.get(f"/crashes/{c['crash_id']}").text
    body = re.search(r'<section id="report".*?</article>', page, re.S)
    assert body
    text = body.group(0)
    assert '<article class="ktriage-crash"><h1>Post-mortem: BUG: soft lockup in crashmod_spin</h1>' in text
    # the verdict is the first section, and it names the guilty function of this soft lockup
    first = re.search(r"<article[^>]*><h1>[^<]*</h1>(<section[^>]*>.*?</section>)", text, re.S)
    assert first and first.group(1).startswith('<section class="verdict"><h2>Summary</h2>')
    assert "Soft lockup in crashmod_spin [crashmod]." in first.group(1)
    assert '<table class="kv">' in text and "<td>kernel</td><td>6.1.192" in text
    assert "Call trace" in text
    # the same stylesheet as the stand-alone file, served by ktriage and scoped to the report
    assert '<link rel="stylesheet" href="/report.css">' in page
    css = client.get("/report.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "article.ktriage-crash section.verdict ul{" in css.text


def test_kernel_strings_are_escaped_everywhere(client, auth) -> None:  # noqa: ANN001
    """A real lab log whose task name was rewritten to a script tag: every page shows it as text."""
    c = _post(client, auth, with_comm(lab_log("bug-on"), XSS), "evil")
    crash = client.get(f"/api/v1/crashes/{c['crash_id']}").json()
    assert crash["report"]["crashes"][0]["task"]["comm"] == XSS  # stored as the kernel printed it
    for url in ("/", f"/buckets/{c['bucket_id']}", f"/crashes/{c['crash_id']}"):
        page = client.get(url).text
        assert "<script>alert" not in page, url
    crash_page = client.get(f"/crashes/{c['crash_id']}").text
    assert html.escape(XSS, quote=False) in crash_page
    bucket_page = client.get(f"/buckets/{c['bucket_id']}").text
    assert html.escape(XSS, quote=False) in bucket_page  # in the representative report's task row


def test_static_files_are_served_locally(client) -> None:  # noqa: ANN001
    page = client.get("/").text
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert client.get(ref).status_code == 200, ref


def test_the_filter_form_as_a_browser_sends_it(client, auth) -> None:  # noqa: ANN001
    """A GET form sends every field, empty ones as ``name=``: they mean "any", not an error."""
    _post(client, auth, lab_log("uaf-poison"), "h1")
    _post(client, auth, lab_log("warn"), "h1")
    r = client.get("/?sort=count&order=desc&q=&kind=gpf&state=&kernel=&host=&distro=&known_bug=&since=")
    assert r.status_code == 200
    assert re.findall(r'class="bucket-link"[^>]*>([^<]+)<', r.text) == [
        "general protection fault in crashmod_obj_dispatch"
    ]
    assert client.get("/api/v1/buckets?state=bogus").status_code == 422
