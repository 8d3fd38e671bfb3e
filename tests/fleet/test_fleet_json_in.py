"""render/json_in reads back exactly what render/json_out wrote, on real reports: the lab's console logs,
the corpora's syzkaller logs, and the real crash texts with their known-bug matches."""

from __future__ import annotations

import pytest
from fleet_inputs import LAB, LAB_ARM64, analyzed

from ktriage.render.json_in import ReportFormatError, report_from_dict
from ktriage.render.json_out import report_dict
from ktriage.render.markdown import render as markdown
from ktriage.render.text import render as text
from realdata import CORPUS, SEEDS


def _roundtrip(d: dict) -> None:
    assert report_dict(report_from_dict(d)) == d


def test_lab_reports_round_trip() -> None:
    d = analyzed(LAB, LAB_ARM64)
    assert len(d["crashes"]) == 24
    _roundtrip(d)


def test_known_bug_matches_round_trip_and_render_the_same() -> None:
    if not SEEDS.is_dir():
        pytest.skip(f"real crash texts not found under {SEEDS} (set KTRIAGE_SHARED)")
    d = analyzed(*sorted(SEEDS.glob("*.txt")))
    assert any(m["kind"] == "match" for c in d["crashes"] for m in c["known_bugs"])
    _roundtrip(d)
    from ktriage.pipeline import Options, analyze_paths

    original = analyze_paths(sorted(str(p) for p in SEEDS.glob("*.txt")), Options())
    back = report_from_dict(d)
    assert markdown(back) == markdown(original)
    assert text(back, color=False) == text(original, color=False)


def test_corpus_reports_round_trip() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"syzkaller corpus not found under {CORPUS} (set KTRIAGE_SHARED)")
    d = analyzed(CORPUS)
    assert len(d["crashes"]) > 400
    _roundtrip(d)


@pytest.mark.parametrize(
    "doc, why",
    [
        ([], "not an object"),
        ({"schema": "other/1"}, "schema"),
        ({"schema": "ktriage.report/1", "crashes": [{"title": "x"}]}, "KeyError"),
        ({"schema": "ktriage.report/1", "crashes": [{"kind": "bug", "title": "t", "frames": [3]}]}, "malformed"),
    ],
)
def test_not_a_report_is_one_line(doc: object, why: str) -> None:
    with pytest.raises(ReportFormatError) as e:
        report_from_dict(doc)  # type: ignore[arg-type]
    assert why in str(e.value) and "\n" not in str(e.value)
