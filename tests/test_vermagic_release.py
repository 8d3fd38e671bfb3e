"""A module's version magic as the last source of the kernel release.

kernel/module.c refuses a module built for another kernel with `<mod>: version magic '<module's>' should be
'<kernel's>'`: the running kernel's release is the one after "should be". The line below is the one quoted in
https://github.com/Bareflank/hypervisor/issues/728; the reports are real texts of this repository's corpus.
Putting the line before them is a composition, said here so: no single public log had both.
"""

from __future__ import annotations

from pathlib import Path

from ktriage.logs import parse_log_text

REAL = Path(__file__).parent / "corpora" / "real"
VERMAGIC = "bareflank: version magic '4.4.0-ABC SMP mod_unload modversions ' should be '4.15.0-XYZ SMP mod_unload '"


def test_release_from_version_magic_when_nothing_else_gives_it() -> None:
    report = (REAL / "fault-address" / "stackoverflow-919575-ppc-2.4-bad-area.log").read_text()
    assert parse_log_text(report)[0].kernel.release is None
    c = parse_log_text(f"{VERMAGIC}\n" + report)[0]
    assert c.kernel.release == "4.15.0-XYZ"  # the running kernel's, not the module's 4.4.0-ABC
    assert any(e.kind == "note" and "version magic" in e.text for e in c.related_events)


def test_modinfo_vermagic_form() -> None:
    report = (REAL / "fault-address" / "stackoverflow-919575-ppc-2.4-bad-area.log").read_text()
    c = parse_log_text("vermagic=5.10.0-46-amd64 SMP mod_unload modversions\n" + report)[0]
    assert c.kernel.release == "5.10.0-46-amd64"


def test_task_line_wins_over_version_magic() -> None:
    text = (REAL / "kinds" / "ubicloud-1113-arm64-soft-lockup.log").read_text()
    c = parse_log_text(f"[  900.000000] {VERMAGIC}\n" + text)[0]
    assert c.kernel.release == "6.5.0-1007-azure"
    assert not any("version magic" in e.text for e in c.related_events)
