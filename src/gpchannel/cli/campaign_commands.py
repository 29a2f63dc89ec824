"""``gpchannel campaign create|status|results|cancel`` and ``gpchannel inventory import``: clients of the OTA
server's campaign API (``--api URL``, env GPCHANNEL_API; see :mod:`gpchannel.server.api_campaigns`).

    gpchannel inventory import fleet/inventory.csv
    gpchannel campaign create --transport scp80 --target B00001 --inventory fleet/inventory.csv \\
        00A4080C047F206F46 00B0000004
    gpchannel campaign status 1 --watch
    gpchannel campaign results 1 --json

An inventory holding ``master:LABEL`` key references is resolved here (``--master LABEL=HEX`` or env
``GPCHANNEL_MASTER_<LABEL>``) and sent with the derived keys over the local API: the master keys never reach
the server. Keys are never printed. Exit codes: 0 success, 1 failure (HTTP error, failed cards with
``results --fail-on-error``), 2 usage error or a refused request (400), 5 the API cannot be reached.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gpchannel.cli.api_client import ApiClient, api_option, call_api, cli_fail, cli_out
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.output import Column, print_table, stderr_console
from gpchannel.errors import InventoryError

__all__ = ["campaign", "inventory"]

_STATES = ("queued", "sent", "done", "failed", "cancelled")
_FINAL_CAMPAIGN = ("finished", "cancelled")


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
master_option = click.option(
    "--master",
    "masters",
    multiple=True,
    metavar="LABEL=HEX",
    help="A master key for master:LABEL references (repeat; or env GPCHANNEL_MASTER_<LABEL>).",
)


def _masters(values: tuple[str, ...]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, value in os.environ.items():
        if name.startswith("GPCHANNEL_MASTER_") and name != "GPCHANNEL_MASTER_KEY":
            try:
                out[name[len("GPCHANNEL_MASTER_") :].lower()] = bytes.fromhex(value)
            except ValueError:
                raise click.BadParameter(f"{name}: hex expected", param_hint="env") from None
    for item in values:
        label, sep, value = item.partition("=")
        if not sep or not label:
            raise click.BadParameter("LABEL=HEX expected", param_hint="--master")
        try:
            out[label] = bytes.fromhex(value)
        except ValueError:
            raise click.BadParameter(f"the key of {label!r} is not hex", param_hint="--master") from None
    return out


def _inventory_body(path: Path, masters: dict[str, bytes]) -> dict[str, str]:
    """The inventory as the API takes it, references resolved locally; usage error naming the bad row."""
    from gpchannel.server.inventory import read_inventory
    from gpchannel.server.inventory_import import has_references, resolved_json

    try:
        cards = read_inventory(path)
        if has_references(cards):
            return {"format": "json", "data": resolved_json(cards, masters)}
    except InventoryError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="inventory") from None
    return {"format": "json" if path.suffix.lower() == ".json" else "csv", "data": path.read_text("utf-8-sig")}


# ------------------------------------------------------------------------------------------------ inventory


@click.group(name="inventory")
def inventory() -> None:
    """Card inventories of the OTA server (cards, numbers, keys, TARs, counters)."""


@inventory.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@master_option
@api_option
@json_option
def inventory_import(path: Path, masters: tuple[str, ...], api_url: str, as_json: bool) -> None:
    """Import a CSV or JSON inventory into the server (keys go to its key provider, never back out)."""
    client = ApiClient(api_url)
    result = call_api(client, "POST", "/inventory", _inventory_body(path, _masters(masters)))
    if as_json:
        cli_out().print_json(data=result)
        return
    cli_out().print(
        f"imported {result['cards']} card(s): {result['created']} new, {result['updated']} updated, "
        f"{result['keysets']} SCP80 key set(s)",
        highlight=False,
    )


# ------------------------------------------------------------------------------------------------ campaign


@click.group(name="campaign")
def campaign() -> None:
    """Run one script on many cards over SCP80 (SMS), SCP81 or SCP81 with an SMS trigger and fallback."""


@campaign.command(name="create")
@click.argument("apdus", nargs=-1, required=True)
@click.option("--transport", type=click.Choice(["scp80", "scp81", "scp81+sms"]), default="scp80", show_default=True)
@click.option("--target", default="", help="SCP80: TAR (hex; default each card's, else the ISD's); SCP81: an AID.")
@click.option("--card", "cards", multiple=True, help="ICCID or PSK identity (repeat).")
@click.option("--cards-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="One card a line.")
@click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Import this inventory and run on all its cards.",
)
@click.option("--name", help="Campaign name (default: transport and card count).")
@click.option("--rate", type=float, help="SMS per second (default 10).")
@click.option("--burst", type=int, help="Messages at once after a quiet time (default 10).")
@click.option("--max-attempts", type=int, help="Sends per card, the first included (default 3; 1 = no retry).")
@click.option("--por-timeout", type=float, help="Seconds to wait for a PoR (default 120).")
@click.option("--backoff", type=float, help="Seconds before the first retry; doubled each time (default 30).")
@click.option("--trigger-timeout", type=float, help="scp81+sms: seconds before the SMS fallback (default 300).")
@click.option("--fallback-tar", help="scp81+sms: TAR of the SMS fallback (default the ISD's 000000).")
@click.option("--format", "script_format", type=click.Choice(["expanded", "compact"]), help="SCP80 script format.")
@click.option("--kvn", type=int, help="SCP80 key set (default each card's).")
@click.option("--spi", help="SCP80 SPI, hex (default each card's, else 1619).")
@master_option
@api_option
@json_option
def create(
    apdus: tuple[str, ...],
    transport: str,
    target: str,
    cards: tuple[str, ...],
    cards_file: Path | None,
    inventory_path: Path | None,
    name: str | None,
    rate: float | None,
    burst: int | None,
    max_attempts: int | None,
    por_timeout: float | None,
    backoff: float | None,
    trigger_timeout: float | None,
    fallback_tar: str | None,
    script_format: str | None,
    kvn: int | None,
    spi: str | None,
    masters: tuple[str, ...],
    api_url: str,
    as_json: bool,
) -> None:
    """Create a campaign running APDU... (hex C-APDUs) on the cards given or on an inventory's cards."""
    selected = list(cards)
    if cards_file is not None:
        selected += [line.strip() for line in cards_file.read_text().splitlines() if line.strip()]
    if bool(selected) == (inventory_path is not None):
        raise click.UsageError("give --card / --cards-file, or --inventory (not both)")
    settings = {
        key: value
        for key, value in (
            ("rate", rate),
            ("burst", burst),
            ("max_attempts", max_attempts),
            ("por_timeout", por_timeout),
            ("backoff_base", backoff),
            ("trigger_timeout", trigger_timeout),
            ("fallback_tar", fallback_tar),
            ("script_format", script_format),
            ("kvn", kvn),
            ("spi", spi),
        )
        if value is not None
    }
    body: dict[str, Any] = {
        "transport": transport,
        "apdus": [a.replace(" ", "") for a in apdus],
        "target": target,
        "settings": settings,
    }
    if name:
        body["name"] = name
    if inventory_path is not None:
        body["inventory"] = _inventory_body(inventory_path, _masters(masters))
    else:
        body["cards"] = selected
    created = call_api(ApiClient(api_url), "POST", "/campaigns", body)
    if as_json:
        cli_out().print_json(data=created)
        return
    cli_out().print(
        f"campaign {created['id']} created: {created['progress']['total']} card(s), {created['transport']}",
        highlight=False,
    )


def _print_campaigns(rows: list[dict[str, Any]]) -> None:
    columns = [Column("id"), Column("name", identifier=True), Column("transport"), Column("state"), Column("total")]
    table = []
    for row in rows:
        p = row["progress"]
        cells = (str(row["id"]), row["name"], row["transport"], row["state"], str(p["total"]))
        table.append((*cells, *(str(p[s]) for s in _STATES)))
    print_table(cli_out(), "Campaigns", [*columns, *(Column(s) for s in _STATES)], table)


_RESULT_COLUMNS = (
    Column("card", identifier=True),
    Column("msisdn", identifier=True),
    Column("state"),
    Column("attempts"),
    Column("last command", identifier=True),
    Column("response", identifier=True),
    Column("SW"),
    Column("reason"),
)


def _final_count(progress: dict[str, int]) -> int:
    return progress["done"] + progress["failed"] + progress["cancelled"]


def _describe(row: dict[str, Any]) -> str:
    p = row["progress"]
    parts = ", ".join(f"{s} {p[s]}" for s in _STATES if p[s])
    return f"campaign {row['id']} ({row['name']}): {row['state']}; {parts or 'no jobs'}"


@campaign.command(name="status")
@click.argument("campaign_id", type=int, required=False)
@click.option("--watch", is_flag=True, help="Show a progress bar until the campaign is finished or cancelled.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between polls (--watch).")
@api_option
@json_option
def status(campaign_id: int | None, watch: bool, interval: float, api_url: str, as_json: bool) -> None:
    """All campaigns, or one campaign's progress (per job state)."""
    client = ApiClient(api_url)
    if campaign_id is None:
        rows = call_api(client, "GET", "/campaigns")["campaigns"]
        if as_json:
            cli_out().print_json(data=rows)
        else:
            _print_campaigns(rows)
        return
    row = call_api(client, "GET", f"/campaigns/{campaign_id}")
    console = stderr_console()  # the bar goes to stderr, only on a terminal (cli/output.py)
    if watch and not as_json and console.is_terminal:
        with Progress(
            TextColumn("[bold]campaign {task.fields[cid]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("done {task.fields[done]} failed {task.fields[failed]} sent {task.fields[sent]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            p = row["progress"]
            counts = {s: p[s] for s in _STATES}
            task = bar.add_task("", total=p["total"], completed=_final_count(p), cid=row["id"], **counts)
            while row["state"] not in _FINAL_CAMPAIGN:
                time.sleep(interval)
                row = call_api(client, "GET", f"/campaigns/{campaign_id}")
                p = row["progress"]
                bar.update(task, total=p["total"], completed=_final_count(p), **{s: p[s] for s in _STATES})
    elif watch:
        while row["state"] not in _FINAL_CAMPAIGN:
            time.sleep(interval)
            row = call_api(client, "GET", f"/campaigns/{campaign_id}")
    if as_json:
        cli_out().print_json(data=row)
    else:
        cli_out().print(_describe(row), highlight=False)


@campaign.command(name="results")
@click.argument("campaign_id", type=int)
@click.option("--state", type=click.Choice(_STATES), help="Only the cards in this state.")
@click.option("--fail-on-error", is_flag=True, help="Exit 1 when a card failed or was cancelled.")
@api_option
@json_option
def results(campaign_id: int, state: str | None, fail_on_error: bool, api_url: str, as_json: bool) -> None:
    """Per card: state, attempts, reason and every R-APDU (``--json``) or the last one (table)."""
    client = ApiClient(api_url)
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = call_api(
            client,
            "GET",
            f"/campaigns/{campaign_id}/results",
            query={"state": state or "", "after": str(after), "limit": "1000"},
        )
        rows += page["results"]
        if page["next_after"] is None:
            break
        after = int(page["next_after"])
    if as_json:
        cli_out().print_json(data=rows)
    else:
        cells = []
        for row in rows:
            last = row["results"][-1] if row["results"] else {"command": "", "response": "", "sw": ""}
            cells.append(
                (
                    row["iccid"] or str(row["card_id"]),
                    row["msisdn"] or "",
                    row["state"],
                    str(row["attempts"]),
                    last["command"],
                    last["response"],
                    last["sw"],
                    row["reason"] or "",
                )
            )
        print_table(cli_out(), f"Campaign {campaign_id}: {len(rows)} card(s)", _RESULT_COLUMNS, cells)
    failed = sum(1 for r in rows if r["state"] in ("failed", "cancelled"))
    if fail_on_error and failed:
        cli_fail(f"{failed} of {len(rows)} card(s) failed or were cancelled (--fail-on-error)", ExitCode.FAILURE)


@campaign.command(name="cancel")
@click.argument("campaign_id", type=int)
@api_option
@json_option
def cancel(campaign_id: int, api_url: str, as_json: bool) -> None:
    """Cancel: cards not yet sent to are CANCELLED; those already sent finish."""
    row = call_api(ApiClient(api_url), "POST", f"/campaigns/{campaign_id}/cancel")
    if as_json:
        cli_out().print_json(data=row)
        return
    cli_out().print(f"campaign {campaign_id} cancelled: {row['cancelled_jobs']} card(s) not sent", highlight=False)
