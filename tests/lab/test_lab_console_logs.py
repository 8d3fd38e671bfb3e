"""The lab's console logs (committed verbatim under tests/fixtures/lab/) read by ktriage's log reader.

These need no lab build: the fixtures are in the repo (CRLF line endings, ANSI escapes and all).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lab"

# scenario -> (accepted crash kinds, guilty frame, RIP symbol or None, key console line regex)
EXPECT = {
    "null-member": (
        {"null-deref"},
        "crashmod_read_rx_count",
        "crashmod_read_rx_count",
        r"BUG: kernel NULL pointer dereference, address: 0000000000000a30",
    ),
    "null-member-timer": (
        {"null-deref"},
        "crashmod_read_rx_count",
        "crashmod_read_rx_count",
        r"BUG: kernel NULL pointer dereference, address: 0000000000000a30",
    ),
    "null-member-work": (
        {"null-deref"},
        "crashmod_read_rx_count",
        "crashmod_read_rx_count",
        r"BUG: kernel NULL pointer dereference, address: 0000000000000a30",
    ),
    "netfilter-udp": (
        {"null-deref"},
        "crashmod_account_skb",
        "crashmod_account_skb",
        r"BUG: kernel NULL pointer dereference, address: 0000000000000a38",
    ),
    "uaf-poison": (
        {"gpf"},
        "crashmod_obj_dispatch",
        "crashmod_obj_dispatch",
        r"general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b",
    ),
    "list-corruption": ({"list-corruption", "bug"}, "crashmod_list_remove", None, r"list_del corruption"),
    "oob-small-object": (
        {"gpf"},
        "crashmod_sock_release",
        "crashmod_sock_release",
        r"general protection fault, probably for non-canonical address",
    ),
    "hung-task": ({"hung-task"}, "crashmod_hung_lock", None, r"INFO: task sh:\d+ blocked for more than \d+ seconds"),
    "soft-lockup": (
        {"soft-lockup"},
        "crashmod_spin",
        "crashmod_spin",
        r"watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s!",
    ),
    "bug-on": ({"bug"}, "crashmod_check_state", "crashmod_check_state", r"kernel BUG at \S*crashmod\.c:\d+!"),
    "warn": (
        {"warning"},
        "crashmod_warn",
        "crashmod_warn",
        r"WARNING: CPU: \d+ PID: \d+ at \S*crashmod\.c:\d+ crashmod_warn",
    ),
    "panic": ({"panic"}, "crashmod_panic", None, r"Kernel panic - not syncing: crashmod: explicit panic requested"),
}


# Gaps of ktriage's log reader found by these logs (non-strict xfail so CI stays green; remove an
# entry when the reader gets it right).  scenario -> what the reader got wrong.
KNOWN_READER_GAPS: dict[str, str] = {}


def _fixture(name: str) -> str:
    path = FIXTURES / f"{name}.console.log"
    if not path.exists():
        pytest.fail(f"{path} missing: run `python3 lab/lab.py all && python3 lab/lab.py fixtures`", pytrace=False)
    return path.read_bytes().decode("utf-8", "replace")


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_fixture_is_verbatim_console(name):
    text = _fixture(name)
    assert "\r\n" in text, "serial console logs keep their CRLF line endings"
    assert re.search(EXPECT[name][3], text)
    assert "crashmod" in text


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_READER_GAPS[n], strict=False))
        if n in KNOWN_READER_GAPS
        else n
        for n in sorted(EXPECT)
    ],
)
def test_log_reader_on_lab_console(name):
    logs = pytest.importorskip("ktriage.logs")
    parse_log_text = getattr(logs, "parse_log_text", None)
    if parse_log_text is None:
        pytest.skip("ktriage.logs.parse_log_text not available yet")
    kinds, guilty, rip_symbol, _ = EXPECT[name]
    crashes = parse_log_text(_fixture(name))
    assert crashes, f"no crash found in {name}.console.log"
    crash = crashes[0]
    assert crash.kind in kinds
    if guilty:
        assert crash.guilty_frame == guilty
    if rip_symbol:
        assert crash.ip.symbol == rip_symbol
        assert crash.ip.module == "crashmod"
