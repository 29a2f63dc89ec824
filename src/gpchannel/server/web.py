"""The read-only HTML page at ``/`` of the API port: the campaigns and their progress (issue 10, deliverable 1).

Server-rendered, no JavaScript, no external resource: a table with each campaign's name, transport, state and a
progress bar (an HTML ``<progress>`` element plus the counts per job state). Every value from the store goes
through :func:`html.escape` (campaign names are user input). The page refreshes itself every 5 seconds with a
``<meta http-equiv="refresh">``; the JSON API has the details.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["campaigns_page"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ccc; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
progress { width: 12em; }
.failed { color: #a00; } .done { color: #070; }
"""
_STATES = ("queued", "sent", "done", "failed", "cancelled")


def _count(progress: Mapping[Any, int], state: str) -> int:
    for key, value in progress.items():
        if str(getattr(key, "value", key)) == state:
            return int(value)
    return 0


def _row(record: Any, progress: Mapping[Any, int]) -> str:
    counts = {state: _count(progress, state) for state in _STATES}
    total = sum(counts.values())
    final = counts["done"] + counts["failed"] + counts["cancelled"]
    e = html.escape
    transport = getattr(record.transport, "value", record.transport)
    state = getattr(record.state, "value", record.state)
    cells = "".join(f'<td class="n {s}">{counts[s]}</td>' for s in _STATES)
    return (
        f'<tr><td class="n">{int(record.id)}</td><td>{e(str(record.name))}</td><td>{e(str(transport))}</td>'
        f"<td>{e(str(state))}</td>"
        f'<td><progress max="{max(total, 1)}" value="{final}">{final}/{total}</progress> {final}/{total}</td>'
        f"{cells}</tr>"
    )


def campaigns_page(rows: Sequence[tuple[Any, Mapping[Any, int]]]) -> str:
    """The page for ``rows`` of (campaign record, progress counts per job state)."""
    header = "".join(f"<th>{s}</th>" for s in _STATES)
    body = "\n".join(_row(r, p) for r, p in rows) or '<tr><td colspan="10">no campaign yet</td></tr>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="5"><title>gpchannel campaigns</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>Campaigns</h1>\n"
        f"<table><thead><tr><th>id</th><th>name</th><th>transport</th><th>state</th><th>progress</th>{header}"
        f"</tr></thead><tbody>\n{body}\n</tbody></table>\n"
        '<p>JSON: <a href="/api/v1/campaigns">/api/v1/campaigns</a></p></body></html>\n'
    )
