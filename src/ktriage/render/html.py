"""`--format html`: one self-contained HTML file (inline CSS, no script, nothing fetched) to attach to a ticket.

Same content as the post-mortem (ktriage.render.document). `crash_fragment` renders one crash as an
HTML fragment from the Report model, for pages that embed it (the fleet dashboard's crash page builds a
Report from stored JSON and calls it), so the crash is never rendered twice in two ways.
"""

from __future__ import annotations

import html

from ktriage import __version__, linear
from ktriage.model import CrashReport, Report
from ktriage.render.document import Block, Section, crash_document

__all__ = ["CSS", "FRAGMENT_CSS", "crash_fragment", "render", "scoped_css"]

# the page around a stand-alone report; FRAGMENT_CSS styles the crash itself (also on the fleet dashboard)
PAGE_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
 padding:1.5em;color:#1b1f24;background:#fff}
footer{margin-top:2em;color:#656d76;font-size:.85em}
"""

FRAGMENT_CSS = """
h1{font-size:1.45em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
h3{font-size:1.05em;margin-top:1.2em}
code,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:13px}
code{background:#f3f4f6;padding:.1em .3em;border-radius:4px}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.8em;overflow-x:auto;line-height:1.35}
pre code{background:none;padding:0}
table{border-collapse:collapse;margin:.6em 0;width:100%}
td,th{border:1px solid #d0d7de;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
table.kv td:first-child{white-space:nowrap;font-weight:600;width:9em}
section.verdict ul{background:#fff8e6;border-left:4px solid #d4a72c;padding:.7em 1em .7em 2em;margin:.5em 0}
.trap{background:#ffebe9;font-weight:600}
"""

CSS = PAGE_CSS + FRAGMENT_CSS

_RULE = linear.compile(r"([^{}]+)\{([^{}]*)\}")


def scoped_css(scope: str = "article.ktriage-crash") -> str:
    """FRAGMENT_CSS with every selector under `scope`, for a page that embeds `crash_fragment` in its own
    layout (the fleet dashboard) without the report's rules restyling the rest of the page."""
    out = []
    for m in _RULE.finditer(FRAGMENT_CSS):
        sels = ",".join(f"{scope} {sel.strip()}" for sel in m.group(1).split(","))
        out.append(f"{sels}{{{m.group(2)}}}")
    return "\n".join(out) + "\n"


_INLINE = linear.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\((https?://[^)\s]+)\)|<(https?://[^>\s]+)>")


def _inline(text: str) -> str:
    """The few Markdown inline forms the document uses (code, bold, links), everything else escaped."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        code, bold, label, url, bare = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{_inline(bold)}</strong>")
        elif label is not None:
            out.append(f'<a href="{html.escape(url, quote=True)}">{_inline(label)}</a>')
        else:
            out.append(f'<a href="{html.escape(bare, quote=True)}">{html.escape(bare)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _code_line(line: str) -> str:
    esc = html.escape(line)
    # the trapping instruction in a listing (`*` first, or crash's `<--`): marked so it stands out
    if line.lstrip().startswith("*") or "<--" in line:
        return f'<span class="trap">{esc}</span>'
    return esc


def _block(b: Block) -> str:
    if b.kind == "p":
        return f"<p>{_inline(b.text)}</p>"
    if b.kind == "list":
        return "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b.items) + "</ul>"
    if b.kind == "code":
        return "<pre><code>" + "\n".join(_code_line(x) for x in b.items) + "</code></pre>"
    if b.kind == "kv":
        rows = "".join(f"<tr><td>{_inline(k)}</td><td>{_inline(v)}</td></tr>" for k, v in b.rows)
        return f'<table class="kv">{rows}</table>'
    if b.kind == "table":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
        rows = "".join("<tr>" + "".join(f"<td>{_inline(x)}</td>" for x in row) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    raise ValueError(f"unknown block kind {b.kind}")


def _section(s: Section) -> str:
    cls = ' class="verdict"' if s.title == "Summary" else ""
    level = s.level + 0
    return (
        f"<section{cls}><h{level}>{html.escape(s.title)}</h{level}>"
        + "".join(_block(b) for b in s.blocks)
        + "</section>"
    )


def crash_fragment(cr: CrashReport) -> str:
    """One crash's post-mortem as an HTML fragment (an <article>), styled by CSS."""
    title, sections = crash_document(cr)
    return (
        f'<article class="ktriage-crash"><h1>{html.escape(title)}</h1>'
        + "".join(map(_section, sections))
        + "</article>"
    )


def render(report: Report) -> str:
    title = report.crashes[0].crash.title if report.crashes else "no kernel crash found"
    body = "".join(crash_fragment(cr) for cr in report.crashes) or "<p>No kernel crash found.</p>"
    inputs = ", ".join(f"{i.path} ({i.format})" for i in report.inputs)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ktriage: {html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"{body}<footer>Written by ktriage {__version__} from {html.escape(inputs)}.</footer>"
        "</body></html>\n"
    )
