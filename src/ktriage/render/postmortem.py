"""`--format postmortem`: the incident document of each crash, in Markdown, for a ticket or a wiki.

The content is ktriage.render.document's model; html.py renders the same model."""

from __future__ import annotations

from ktriage import __version__
from ktriage.model import Report
from ktriage.render.document import Block, crash_document

__all__ = ["render"]


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _block(b: Block) -> list[str]:
    if b.kind == "p":
        return [b.text, ""]
    if b.kind == "list":
        return [f"- {x}" for x in b.items] + [""]
    if b.kind == "code":
        return [f"```{b.lang}", *b.items, "```", ""]
    if b.kind == "kv":
        return ["| | |", "|---|---|", *[f"| {_cell(k)} | {_cell(v)} |" for k, v in b.rows], ""]
    if b.kind == "table":
        return [
            "| " + " | ".join(b.header) + " |",
            "|" + "---|" * len(b.header),
            *["| " + " | ".join(_cell(x) for x in row) + " |" for row in b.rows],
            "",
        ]
    raise ValueError(f"unknown block kind {b.kind}")


def render(report: Report) -> str:
    out: list[str] = []
    for cr in report.crashes:
        title, sections = crash_document(cr)
        out += [f"# {title}", ""]
        for s in sections:
            out += ["#" * s.level + " " + s.title, ""]
            for b in s.blocks:
                out += _block(b)
        out += ["---", ""]
    if not report.crashes:
        out += ["# ktriage: no kernel crash found", ""]
    inputs = ", ".join(f"`{i.path}` ({i.format})" for i in report.inputs)
    out += [f"*Written by ktriage {__version__} from {inputs}.*", ""]
    return "\n".join(out)
