"""The dashboard in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium) against the real `ktriage fleet serve`.

Inputs are real: the lab's QEMU console logs, posted from several hosts on several days, a CentOS 7 NFQUEUE
deployment's crash text when the shared material is there, and one lab log (bug-on) whose `Comm:` was rewritten
to `<script>alert(1)</script>` — the only edit, standing for a program that named itself so (comm is user data).
Set KTRIAGE_SCREENSHOT=docs/fleet-bucket.png to refresh the README's screenshot of the bucket page.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_inputs import XSS, lab_log, seed_texts, with_comm

from ktriage.server.live import LiveServer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install 'ktriage[test]')")
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or ""
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and DRIVER), reason="no headless browser: apt-get install chromium chromium-driver"
)

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _post(base: str, token: str, body: bytes, host: str, seen: str) -> dict:
    req = urllib.request.Request(
        f"{base}/api/v1/reports?host={host}&seen={seen}",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 202
        return dict(json.load(r)["crashes"][0])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("browser")
    # the same log from the same host is one crash (stored once), so each post below comes from another host
    server = LiveServer(f"sqlite:///{tmp}/fleet.db", tmp / "serve.log").start()
    try:
        token = server.token("browser-test")
        days = ["2026-11-24", "2026-11-26", "2026-11-29", "2026-12-01", "2026-12-03", "2026-12-04"]
        buckets = {}
        for i, day in enumerate(days):
            buckets["warn"] = _post(server.base, token, lab_log("warn"), f"web-{i}", f"{day}T0{i}:10:00")["bucket_id"]
        for i, day in enumerate(days[2:]):
            buckets["gpf"] = _post(server.base, token, lab_log("uaf-poison"), f"db-{i}", f"{day}T12:00:00")["bucket_id"]
        buckets["lockup"] = _post(server.base, token, lab_log("soft-lockup"), "web-0", "2026-12-02T08:00:00")[
            "bucket_id"
        ]
        xss = _post(server.base, token, with_comm(lab_log("bug-on"), XSS), "evil-1", "2026-12-04T09:00:00")
        buckets["xss"], buckets["xss_crash"] = xss["bucket_id"], str(xss["crash_id"])
        seeds = [p for p in seed_texts() if p.name.startswith("000_")]
        if seeds:  # the known-bug bucket makes the richer screenshot
            for i, day in enumerate(days[1:]):  # five crashes: one fewer than the warn bucket
                c = _post(server.base, token, seeds[0].read_bytes(), f"nfq-{i}", f"{day}T1{i}:30:00")
            buckets["known"] = c["bucket_id"]
        yield server, buckets
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:  # noqa: ANN201 - selenium's WebDriver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def _no_alert(drv) -> None:  # noqa: ANN001
    try:
        text = drv.switch_to.alert.text
    except NoAlertPresentException:
        return
    pytest.fail(f"a script ran: alert {text!r}")


def _rows(drv) -> list[str]:  # noqa: ANN001
    return [a.text for a in drv.find_elements(By.CSS_SELECTOR, "#buckets a.bucket-link")]


def test_filter_the_table_and_open_a_bucket(fleet, browser) -> None:  # noqa: ANN001
    server, buckets = fleet
    browser.get(server.base + "/")
    assert "buckets" in browser.title
    everything = _rows(browser)
    assert "WARNING in crashmod_warn" in everything and len(everything) == len({k for k in buckets if k != "xss_crash"})

    # sort by count: the warn bucket (6 crashes) comes first
    browser.find_element(By.ID, "sort-count").click()
    WebDriverWait(browser, 20).until(lambda d: "sort=count" in d.current_url)
    assert _rows(browser)[0] == "WARNING in crashmod_warn"

    # filter by kind: the page script re-submits the form when a select changes
    Select(browser.find_element(By.NAME, "kind")).select_by_value("gpf")
    WebDriverWait(browser, 20).until(lambda d: "kind=gpf" in d.current_url)
    assert _rows(browser) == ["general protection fault in crashmod_obj_dispatch"]

    # text search
    browser.get(server.base + "/")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("soft lockup")
    box.submit()
    WebDriverWait(browser, 20).until(lambda d: "q=soft" in d.current_url)
    assert _rows(browser) == ["BUG: soft lockup in crashmod_spin"]

    browser.get(server.base + "/")
    browser.find_element(By.LINK_TEXT, "WARNING in crashmod_warn").click()
    WebDriverWait(browser, 20).until(lambda d: "/buckets/" in d.current_url)
    assert browser.current_url.endswith(f"/buckets/{buckets['warn']}")
    assert browser.find_element(By.ID, "bucket-title").text == "WARNING in crashmod_warn"
    bars = browser.find_elements(By.CSS_SELECTOR, "#per-day svg.chart rect.bar")
    assert len(bars) == 6  # six days with crashes
    # the chart switches to weeks and months (CSS only): one chart shown at a time
    assert browser.find_element(By.ID, "per-day").is_displayed()
    assert not browser.find_element(By.ID, "per-week").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "label[for=unit-week]").click()
    assert browser.find_element(By.ID, "per-week").is_displayed()
    assert not browser.find_element(By.ID, "per-day").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "label[for=unit-month]").click()
    assert browser.find_element(By.ID, "per-month").is_displayed()
    assert not browser.find_element(By.ID, "per-week").is_displayed()
    periods = browser.find_element(By.CSS_SELECTOR, "#per-kernel-periods tbody tr td").text
    assert periods == "6.1.192"
    kernels = browser.find_elements(By.CSS_SELECTOR, "#per-kernel tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in kernels] == ["6.1.192"]
    assert kernels[0].find_elements(By.TAG_NAME, "td")[1].text == "6"
    hosts = [r.find_element(By.TAG_NAME, "td").text for r in browser.find_elements(By.CSS_SELECTOR, "#hosts tbody tr")]
    assert sorted(hosts) == [f"web-{i}" for i in range(6)]
    report = browser.find_element(By.ID, "representative").text
    assert "Call trace" in report and "crashmod_warn" in report
    _no_alert(browser)


def test_script_in_a_task_name_stays_text(fleet, browser) -> None:  # noqa: ANN001
    server, buckets = fleet
    for path in ("/", f"/buckets/{buckets['xss']}", f"/crashes/{buckets['xss_crash']}"):
        browser.get(server.base + path)
        _no_alert(browser)
        scripts = [s.get_attribute("src") or "" for s in browser.find_elements(By.TAG_NAME, "script")]
        assert all(s.endswith("/static/ktriage.js") for s in scripts), (path, scripts)
        if path != "/":
            assert XSS in browser.find_element(By.TAG_NAME, "main").text, path  # shown, as text
    _no_alert(browser)


def test_bucket_page_screenshot(fleet, browser, tmp_path: Path) -> None:  # noqa: ANN001
    server, buckets = fleet
    which = buckets.get("known", buckets["warn"])
    browser.get(f"{server.base}/buckets/{which}")
    if "known" in buckets:
        assert "nf-conntrack-clash-refetch" in browser.find_element(By.ID, "known-bug").text
        kernel_row = browser.find_element(By.CSS_SELECTOR, "#per-kernel tbody tr").text
        assert "3.10.0-1160.el7.x86_64" in kernel_row and "lacks the fix" in kernel_row
        # beside "lacks the fix", the state says what it means instead of a bare "fixed"
        assert browser.find_element(By.ID, "state").text.startswith("fix available — none seen on fixed kernels")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 40, 3000))
    shot = tmp_path / "fleet-bucket.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("KTRIAGE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["KTRIAGE_SCREENSHOT"])
    browser.set_window_size(1280, 900)
