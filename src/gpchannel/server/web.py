"""The read-only HTML pages of the API port: campaigns and their progress, for a person watching a rollout.

- ``/``: the campaigns, each with its transport, state and a progress bar whose segments show the cards done,
  failed, cancelled and sent in their own colours (three failed cards are a red bar, not a full blue one), and
  links to each campaign's page (and to its cards in a given state).
- ``/campaigns/{id}?state=&after=``: one campaign: its counts and bar, then every card (by ICCID, else PSK
  identity, else id) with its MSISDN, state, attempts, the last status word (with its meaning) or PoR status of
  its job, and the failure reason; ``state`` keeps the cards in one state, ``after`` pages through large fleets.

Server-rendered, no JavaScript, no external resource, behind the API's token (Bearer, or HTTP Basic with the token
as the password for a browser: server/auth.py). Every value from the store goes through :func:`html.escape`
(campaign names, reasons and MSISDNs are user or card input). The pages refresh themselves every 5 seconds with a
``<meta http-equiv="refresh">``; the JSON API has the details (``/api/v1/campaigns/{id}/results``).
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from gpchannel.codec.sw import describe

__all__ = ["PAGE_LIMIT", "STATES", "campaign_page", "campaigns_page"]

STATES = ("queued", "sent", "done", "failed", "cancelled")
"""Job states in the order the pages show them (server/repository.py JobState values)."""
PAGE_LIMIT = 500
"""Cards per campaign page (``after`` for the next ones)."""

_COLOURS = {"done": "#2e7d32", "failed": "#c62828", "cancelled": "#757575", "sent": "#f9a825", "queued": "#e0e0e0"}
_BAR_ORDER = ("done", "failed", "cancelled", "sent")  # queued: the bar's empty background
_POR = re.compile(r"PoR status ([0-9A-F]{2})(?: \(([A-Z_0-9]+)\))?")
"""How the SCP80 worker words a failure on the card's PoR (server/scp80_worker.py)."""

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ccc; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.hex { font-family: monospace; }
.nowrap { white-space: nowrap; }
.bar { display: inline-flex; width: 14em; height: 1em; background: #e0e0e0; border: 1px solid #999;
       vertical-align: middle; }
.bar span { display: block; height: 100%; }
.key span { display: inline-block; width: 0.8em; height: 0.8em; margin: 0 0.3em 0 1em; vertical-align: middle; }
a.current { font-weight: bold; text-decoration: none; color: #222; }
nav { margin: 0.5em 0 1em; } nav a { margin-right: 0.8em; }
tr.failed td.state, td.failed, .reason { color: #c62828; }
tr.done td.state, td.done { color: #2e7d32; }
""" + "".join(f".s-{s} {{ background: {c}; }}\n" for s, c in _COLOURS.items())


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _value(obj: object) -> str:
    return str(getattr(obj, "value", obj))


def _counts(progress: Mapping[Any, int]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for key, value in progress.items():
        if _value(key) in counts:
            counts[_value(key)] = int(value)
    return counts


def _bar(counts: Mapping[str, int]) -> str:
    """A stacked bar: a segment per final or sent state, its width the share of the cards in it."""
    total = sum(counts.values())
    parts = []
    for state in _BAR_ORDER:
        if total and counts[state]:
            width = 100.0 * counts[state] / total
            label = f"{counts[state]} {state}"
            parts.append(f'<span class="s-{state}" style="width: {width:.2f}%" title="{label}"></span>')
    final = counts["done"] + counts["failed"] + counts["cancelled"]
    summary = f"{final}/{total} finished: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    return f'<span class="bar" role="img" aria-label="{_e(summary)}">{"".join(parts)}</span> {final}/{total}'


def _key() -> str:
    return '<p class="key">' + "".join(f'<span class="s-{s}"></span>{s}' for s in (*_BAR_ORDER, "queued")) + "</p>"


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="5"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _campaign_link(campaign_id: int, state: str | None = None, after: int | None = None) -> str:
    query = {k: str(v) for k, v in (("state", state), ("after", after)) if v}
    return f"/campaigns/{int(campaign_id)}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def _row(record: Any, progress: Mapping[Any, int]) -> str:
    counts = _counts(progress)
    link = _campaign_link(record.id)
    cells = "".join(
        f'<td class="n {s}"><a href="{_e(_campaign_link(record.id, s))}">{counts[s]}</a></td>'
        if counts[s]
        else f'<td class="n {s}">0</td>'
        for s in STATES
    )
    return (
        f'<tr><td class="n"><a href="{link}">{int(record.id)}</a></td>'
        f'<td><a href="{link}">{_e(record.name)}</a></td><td>{_e(_value(record.transport))}</td>'
        f'<td>{_e(_value(record.state))}</td><td class="nowrap">{_bar(counts)}</td>{cells}</tr>'
    )


def campaigns_page(rows: Sequence[tuple[Any, Mapping[Any, int]]]) -> str:
    """The page for ``rows`` of (campaign record, progress counts per job state)."""
    header = "".join(f"<th>{s}</th>" for s in STATES)
    body = "\n".join(_row(r, p) for r, p in rows) or '<tr><td colspan="10">no campaign yet</td></tr>'
    return _document(
        "gpchannel campaigns",
        "<h1>Campaigns</h1>\n"
        f"<table><thead><tr><th>id</th><th>name</th><th>transport</th><th>state</th><th>progress</th>{header}"
        f"</tr></thead><tbody>\n{body}\n</tbody></table>\n{_key()}"
        '<p>JSON: <a href="/api/v1/campaigns">/api/v1/campaigns</a></p>',
    )


def _last_status(job: Any) -> str:
    """The last status word of the job's results with its meaning, else the PoR status its reason names."""
    results = getattr(job, "results", ()) or ()
    if results:
        return f'<td class="hex">{_e(describe(int(results[-1].sw)))}</td>'
    match = _POR.search(str(getattr(job, "reason", "") or ""))
    if match is not None:
        name = f" ({match.group(2)})" if match.group(2) else ""
        return f'<td class="hex">PoR {_e(match.group(1))}{_e(name)}</td>'
    return "<td></td>"


def _when(moment: Any) -> str:
    """A timestamp as ``2026-12-07 03:41:30 UTC`` (the store's are aware, in UTC)."""
    if moment is None:
        return ""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC"


def _card_name(card: Any, card_id: int) -> str:
    for attribute in ("iccid", "psk_identity"):
        value = getattr(card, attribute, None)
        if value:
            return str(value)
    return f"card {card_id}"


def _card_row(job: Any, card: Any) -> str:
    state = _value(job.state)
    reason = getattr(job, "reason", None) or ""
    msisdn = getattr(card, "msisdn", None) or ""
    updated = getattr(job, "updated_at", None)
    return (
        f'<tr class="{_e(state)}"><td class="hex">{_e(_card_name(card, job.card_id))}</td>'
        f'<td class="hex">{_e(msisdn)}</td><td class="state">{_e(state)}</td>'
        f'<td class="n">{int(job.attempts)}</td>{_last_status(job)}'
        f'<td class="reason">{_e(reason)}</td>'
        f'<td class="nowrap">{_e(_when(updated))}</td></tr>'
    )


def campaign_page(
    record: Any,
    progress: Mapping[Any, int],
    jobs: Sequence[tuple[Any, Any]],
    *,
    state: str | None = None,
    next_after: int | None = None,
) -> str:
    """One campaign's page: ``jobs`` are its (job record, card record or None) pairs shown, ``state`` the filter
    applied (None: every state), ``next_after`` the ``after`` of the next page (None: the last page)."""
    counts = _counts(progress)
    total = sum(counts.values())
    current = ' class="current"'
    nav = [f'<a href="{_campaign_link(record.id)}"{current if state is None else ""}>all ({total})</a>']
    nav += [
        f'<a href="{_e(_campaign_link(record.id, s))}"{current if state == s else ""}>{s} ({counts[s]})</a>'
        for s in STATES
    ]
    header = "".join(
        f"<th>{h}</th>" for h in ("card", "MSISDN", "state", "attempts", "last SW / PoR", "reason", "updated")
    )
    empty = f"no card {_e(state)}" if state else "no card"
    rows = "\n".join(_card_row(job, card) for job, card in jobs) or f'<tr><td colspan="7">{empty}</td></tr>'
    more = (
        f'<p><a href="{_e(_campaign_link(record.id, state, next_after))}">next cards</a></p>'
        if next_after is not None
        else ""
    )
    apdus = " ".join(a.hex().upper() if isinstance(a, bytes) else str(a) for a in getattr(record, "script", ()))
    target = getattr(record, "target", b"")
    target_hex = target.hex().upper() if isinstance(target, bytes) else str(target or "")
    title = f"Campaign {int(record.id)}: {record.name}"
    return _document(
        title,
        f'<p><a href="/">all campaigns</a></p>\n<h1>{_e(title)}</h1>\n'
        f"<p>{_e(_value(record.transport))}, {_e(_value(record.state))}"
        + (f", target <code>{_e(target_hex)}</code>" if target_hex else "")
        + f"; script <code>{_e(apdus)}</code></p>\n"
        f"<p>{_bar(counts)}</p>{_key()}\n"
        f"<nav>{''.join(nav)}</nav>\n"
        f"<table><thead><tr>{header}</tr></thead><tbody>\n{rows}\n</tbody></table>\n{more}"
        f'<p>JSON: <a href="/api/v1/campaigns/{int(record.id)}/results">'
        f"/api/v1/campaigns/{int(record.id)}/results</a></p>",
    )
