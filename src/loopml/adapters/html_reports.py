"""Self-contained HTML reports: one file, inline CSS, no script, no network.

A report opens offline from a CI artifact or an e-mail. Every value from the data is
escaped: a category named ``<script>`` is shown, never run.
"""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430}
h1{font-size:1.4rem;margin:0 0 .3rem}
.meta{color:#5b6472;margin-bottom:1rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600}
.ok{background:#dcf5e3;color:#125b2a}.fail{background:#fde2e1;color:#8a1c17}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.45rem .6rem;border-bottom:1px solid #e3e6ea}
th{background:#f4f6f8}
.error{color:#8a1c17;font-weight:600}.warning{color:#8a5a00;font-weight:600}
.info{color:#2d5b8a}
code{background:#f4f6f8;padding:0 .25rem;border-radius:3px}
"""


def validation_html(report: dict[str, Any], title: str) -> str:
    """The report of :meth:`ValidationReport.to_dict` as a complete HTML page."""
    counts = report["counts"]
    verdict = "passed" if report["ok"] else "failed"
    rows = "".join(_finding_row(f) for f in report["findings"]) or (
        '<tr><td colspan="6">No findings: the data matches the schema.</td></tr>'
    )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<div class="meta"><span class="badge {"ok" if report["ok"] else "fail"}">'
        f"{verdict}</span> &nbsp; {report['rows']:,} rows, environment "
        f"<code>{escape(str(report['environment']))}</code>: "
        f"{counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings, "
        f"{counts.get('info', 0)} notes</div>"
        "<table><thead><tr><th>severity</th><th>column</th><th>check</th><th>expected</th>"
        "<th>seen</th><th>what to do</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></body></html>\n"
    )


def _finding_row(f: dict[str, Any]) -> str:
    examples = ", ".join(escape(repr(v)) for v in f.get("examples", []))
    seen = escape(str(f["seen"])) + (f"<br><small>e.g. {examples}</small>" if examples else "")
    severity = escape(str(f["severity"]))
    return (
        f'<tr><td class="{severity}">{severity}</td>'
        f"<td>{escape(str(f['column'] or '-'))}</td><td>{escape(str(f['check']))}</td>"
        f"<td>{escape(str(f['expected']))}</td><td>{seen}</td>"
        f"<td>{escape(str(f['hint']))}</td></tr>"
    )
