"""``gpchannel server`` (the Remote Administration Server of GP Amendment B and its job API) and ``gpchannel ram
push|status|results|cancel`` (clients of that job API).

``gpchannel server`` runs until SIGTERM or SIGINT, then stops listening, lets the admin sessions end (a job whose
script is out stays ``sent``; docs/server.md has the resumption rule) and closes its store. It prints the bound
addresses (``admin 127.0.0.1:8443`` and ``api http://127.0.0.1:8080``) on stdout once both listen.

``gpchannel ram ...`` talk to the job API at ``--api URL`` (env ``GPCHANNEL_API``, default
``http://127.0.0.1:8080``). Exit codes as the rest of the CLI (cli/exit_codes.py): 0 success, 1 failure (unknown
card or job, failed or cancelled job, no results yet), 2 usage error (the API refused the request as malformed),
4 the card refused (a command of the job answered a status word other than success, or the job failed on a PoR
status other than 00; ``--ok-on-refusal`` makes that 0), 5 the API cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import time
from pathlib import Path
from typing import Any

import click

from gpchannel.cli.apdu_text import parse_apdu_text
from gpchannel.cli.api_client import ApiClient, api_option, call_api, cli_fail, cli_out
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.output import Column, print_table
from gpchannel.cli.settings import fail_on
from gpchannel.codec.sw import describe
from gpchannel.codec.sw import is_success as sw_success
from gpchannel.errors import GPChannelError
from gpchannel.io import event_loop
from gpchannel.server.config import DEFAULT_ADMIN_PORT, DEFAULT_API_PORT, ServerConfig, parse_address

__all__ = ["ram", "server"]

_FINAL = ("done", "failed", "cancelled")
_POR_REFUSAL = re.compile(r"PoR status [0-9A-F]{2} ")
"""How the SCP80 worker words a job's failure on the card's PoR (server/scp80_worker.py, ``_outcome``)."""
_DEFAULT_SMPP_PORT = 2775


# ------------------------------------------------------------------------------------------------ gpchannel server


@click.group(name="server", invoke_without_command=True)
@click.pass_context
@click.option(
    "--admin",
    "admin",
    default=f"127.0.0.1:{DEFAULT_ADMIN_PORT}",
    show_default=True,
    help="PSK-TLS admin listener host:port (port 0: any free port).",
)
@click.option(
    "--admin-reuse-port", is_flag=True, help="SO_REUSEPORT on the admin listener: server processes share its port."
)
@click.option(
    "--api",
    "api",
    default=f"127.0.0.1:{DEFAULT_API_PORT}",
    show_default=True,
    help="JSON job API host:port (keep it local).",
)
@click.option(
    "--db",
    "db_url",
    envvar="GPCHANNEL_DB",
    help="SQLAlchemy URL (default: SQLite gpchannel-server.db in --data; env GPCHANNEL_DB).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    help="Data directory (the SQLite store, master.key).",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Register the card a profile describes ([card] iccid, [scp81] identity and PSK); repeatable.",
)
@click.option("--legacy-tls", is_flag=True, help="Also TLS 1.0/1.1 and PSK-AES128-CBC-SHA for old cards.")
@click.option("--allow-null-tls", is_flag=True, help="Allow the NULL (no encryption) PSK suites. Never in the field.")
@click.option(
    "--max-record",
    type=int,
    default=16384,
    show_default=True,
    help="Largest plaintext per TLS record the server sends (some cards want 256).",
)
@click.option(
    "--read-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds an admin session may stay silent before the server gives up on it.",
)
@click.option("--admin-path", default="/gp/admin", show_default=True, help="Base of the X-Admin-Next-URI values.")
@click.option(
    "--keys",
    "key_provider",
    type=click.Choice(["db", "pkcs11"]),
    default="db",
    show_default=True,
    help="Where the cards' keys live: wrapped in the database, or in a PKCS#11 token.",
)
@click.option("--pkcs11-lib", help="PKCS#11 module path (--keys pkcs11).")
@click.option("--pkcs11-token", help="PKCS#11 token label (--keys pkcs11).")
@click.option("--pkcs11-pin", envvar="GPCHANNEL_PKCS11_PIN", help="User PIN (env GPCHANNEL_PKCS11_PIN).")
@click.option("--smpp", multiple=True, help="SMSC host:port for the SCP80 / SMS campaign workers; repeatable.")
@click.option("--smpp-system-id", default="gpchannel", show_default=True, help="SMPP bind system_id.")
@click.option("--smpp-password", envvar="GPCHANNEL_SMPP_PASSWORD", default="", help="SMPP bind password (env).")
@click.option("--source-addr", default="0", show_default=True, help="The server's number (TP-OA of the SMS).")
@click.option("--campaign-rate", type=float, default=10.0, show_default=True, help="Default SMS/s of a campaign.")
@click.option("--campaign-max-attempts", type=int, default=3, show_default=True, help="Default sends per card.")
@click.option("--campaign-por-timeout", type=float, default=120.0, show_default=True, help="Default PoR wait (s).")
@click.option("--worker-only", is_flag=True, help="Run the campaign workers only (no listeners).")
@click.option("--api-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="HTTPS: PEM cert.")
@click.option("--api-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="HTTPS: PEM key.")
@click.option("--insecure-api", is_flag=True, help="Allow the API off loopback without TLS/tokens (lab only).")
@click.option("--api-rate", type=float, default=50.0, show_default=True, help="API requests/s per token (0: off).")
@click.option("--api-scripts-per-hour", type=int, default=100_000, show_default=True, help="Scripts/h per token.")
@click.option("--api-max-campaign-cards", type=int, default=0, show_default=True, help="Cards/campaign (0: any).")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def server(
    ctx: click.Context,
    admin: str,
    admin_reuse_port: bool,
    api: str,
    db_url: str | None,
    data_dir: Path,
    profiles: tuple[Path, ...],
    legacy_tls: bool,
    allow_null_tls: bool,
    max_record: int,
    read_timeout: float,
    admin_path: str,
    key_provider: str,
    pkcs11_lib: str | None,
    pkcs11_token: str | None,
    pkcs11_pin: str | None,
    smpp: tuple[str, ...],
    smpp_system_id: str,
    smpp_password: str,
    source_addr: str,
    campaign_rate: float,
    campaign_max_attempts: int,
    campaign_por_timeout: float,
    worker_only: bool,
    api_cert: Path | None,
    api_key: Path | None,
    insecure_api: bool,
    api_rate: float,
    api_scripts_per_hour: int,
    api_max_campaign_cards: int,
    log_level: str,
) -> None:
    """Run the Remote Administration Server (GP Amendment B over PSK-TLS) and its JSON job API."""
    if ctx.invoked_subcommand is not None:
        return  # gpchannel server token ...: the subcommand opens the store itself
    try:
        admin_host, admin_port = parse_address(admin, DEFAULT_ADMIN_PORT)
        api_host, api_port = parse_address(api, DEFAULT_API_PORT)
        config = ServerConfig(
            admin_host=admin_host,
            admin_port=admin_port,
            admin_reuse_port=admin_reuse_port,
            api_host=api_host,
            api_port=api_port,
            data_dir=data_dir,
            db_url=db_url,
            legacy_tls=legacy_tls,
            allow_null_tls=allow_null_tls,
            max_record=max_record,
            read_timeout=read_timeout,
            admin_path=admin_path,
            profiles=profiles,
            key_provider=key_provider,
            pkcs11_lib=pkcs11_lib,
            pkcs11_token=pkcs11_token,
            pkcs11_pin=pkcs11_pin,
            smpp=smpp,
            smpp_system_id=smpp_system_id,
            smpp_password=smpp_password,
            source_addr=source_addr,
            campaign_rate=campaign_rate,
            campaign_max_attempts=campaign_max_attempts,
            campaign_por_timeout=campaign_por_timeout,
            worker_only=worker_only,
            api_cert=api_cert,
            api_key=api_key,
            insecure_api=insecure_api,
            api_rate=api_rate,
            api_scripts_per_hour=api_scripts_per_hour,
            api_max_campaign_cards=api_max_campaign_cards,
        )
        for smsc in smpp:
            parse_address(smsc, _DEFAULT_SMPP_PORT)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if worker_only and not smpp:
        raise click.UsageError("--worker-only needs --smpp HOST:PORT (the SMSC its SCP80 worker sends through)")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its migration chatter at every start
    try:
        event_loop.run(_serve(config))
    except GPChannelError as exc:
        fail_on(None, exc)
    except OSError as exc:
        cli_fail(f"cannot listen: {exc}", ExitCode.TRANSPORT)


async def _serve(config: ServerConfig) -> None:
    from gpchannel.server.app import ServerAddresses, run_server  # lazily: OpenSSL, SQLAlchemy, aiohttp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(addresses: ServerAddresses) -> None:
        if addresses.admin is not None:
            click.echo(f"admin {addresses.admin[0]}:{addresses.admin[1]}")
        if addresses.api is not None:
            scheme = "https" if config.api_cert is not None else "http"
            click.echo(f"api {scheme}://{addresses.api[0]}:{addresses.api[1]}")
        click.echo("ready", nl=True)

    await run_server(config, stop, on_ready=ready)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
refusal_option = click.option(
    "--ok-on-refusal",
    is_flag=True,
    help="Exit 0 when the card refused (a status word other than success, a PoR status other than 00); default 4.",
)


def _print_jobs(jobs: list[dict[str, Any]]) -> None:
    columns = [Column("id"), Column("card", identifier=True), Column("transport"), Column("target", identifier=True)]
    columns += [Column("APDUs"), Column("state"), Column("reason"), Column("updated")]
    rows = [
        (
            str(job["id"]),
            str(job["card_id"]),
            job["transport"],
            job["target"] or "ISD",
            str(len(job["apdus"])),
            job["state"],
            job["reason"] or "",
            job["updated_at"],
        )
        for job in jobs
    ]
    print_table(cli_out(), "Jobs", columns, rows)


def _print_results(job: dict[str, Any]) -> None:
    title = f"Job {job['id']}: {job['state']}" + (f" ({job['reason']})" if job["reason"] else "")
    columns = (Column("#"), Column("command", True), Column("response", True), Column("SW"), Column("meaning"))
    rows = [
        (str(index), r["command"], r["response"], r["sw"], describe(int(r["sw"], 16)))
        for index, r in enumerate(job["results"], 1)
    ]
    print_table(cli_out(), title, columns, rows)


def _wait(client: ApiClient, job_id: int, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = call_api(client, "GET", f"/jobs/{job_id}")
        if job["state"] in _FINAL or time.monotonic() >= deadline:
            return job
        time.sleep(0.2)


def _exit_for(job: dict[str, Any], ok_on_refusal: bool) -> None:
    """Exit 1 for a job without results (not final, cancelled, failed short of the card), 4 when the card refused
    (a status word other than success, or a PoR status other than 00) unless ``ok_on_refusal``; else return."""
    number, state, reason = job["id"], job["state"], job["reason"] or ""
    if state not in _FINAL:
        cli_fail(f"job {number} is {state}: no results yet (see `gpchannel ram status {number}`)", ExitCode.FAILURE)
    por_refusal = state == "failed" and _POR_REFUSAL.match(reason) is not None
    if state != "done" and not por_refusal:
        cli_fail(f"job {number} {state}" + (f": {reason}" if reason else ""), ExitCode.FAILURE)
    refused = sum(1 for r in job["results"] if not sw_success(int(r["sw"], 16)))
    if ok_on_refusal or not (refused or por_refusal):
        return
    if por_refusal:
        cli_fail(f"job {number}: the card refused the packet: {reason}", ExitCode.CARD_REFUSED)
    message = f"job {number}: the card refused {refused} of {len(job['results'])} command(s) (status words above)"
    cli_fail(message, ExitCode.CARD_REFUSED)


# ------------------------------------------------------------------------------------------------ gpchannel ram


@click.group(name="ram")
def ram() -> None:
    """Queue scripts for cards and read their results through the server's job API."""


@ram.command()
@click.argument("apdus", nargs=-1, required=True)
@click.option("--card", "iccid", help="The card's ICCID.")
@click.option("--identity", help="The card's PSK identity.")
@click.option("--target", help="Application AID the script is for (X-Admin-Targeted-Application); default the ISD.")
@click.option("--transport", type=click.Choice(["scp81", "scp80", "scp81+sms"]), default="scp81", show_default=True)
@click.option("--wait", "wait_seconds", type=float, help="Wait up to SECONDS for the job to finish; show results.")
@refusal_option
@api_option
@json_option
def push(
    apdus: tuple[str, ...],
    iccid: str | None,
    identity: str | None,
    target: str | None,
    transport: str,
    wait_seconds: float | None,
    ok_on_refusal: bool,
    api_url: str,
    as_json: bool,
) -> None:
    """Queue a script (APDUs in hex; RAM and RFM commands are APDUs too) for one card; print the job id."""
    if (iccid is None) == (identity is None):
        raise click.UsageError("give --card ICCID or --identity ID (one of them)")
    try:
        commands = [parse_apdu_text(text).to_bytes().hex().upper() for text in apdus]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="APDU") from None
    card = {"iccid": iccid} if iccid is not None else {"psk_identity": identity}
    body: dict[str, Any] = {"card": card, "apdus": commands, "transport": transport}
    if target:
        body["target"] = target
    client = ApiClient(api_url)
    job: dict[str, Any] = call_api(client, "POST", "/jobs", body)
    if wait_seconds is not None:
        job = _wait(client, int(job["id"]), wait_seconds)
    if as_json:
        click.echo(json.dumps(job))
    elif wait_seconds is not None and job["results"]:
        _print_results(job)
    else:
        cli_out().print(
            f"job {job['id']} {job['state']}" + (f": {job['reason']}" if job["reason"] else ""), highlight=False
        )
    if wait_seconds is not None:
        _exit_for(job, ok_on_refusal)


@ram.command()
@click.argument("job_id", type=int, required=False)
@click.option("--state", type=click.Choice(["queued", "sent", "done", "failed", "cancelled"]))
@click.option("--card", "iccid", help="Only this card's jobs (ICCID).")
@click.option("--identity", help="Only this card's jobs (PSK identity).")
@click.option("--limit", type=int, default=100, show_default=True)
@api_option
@json_option
def status(
    job_id: int | None,
    state: str | None,
    iccid: str | None,
    identity: str | None,
    limit: int,
    api_url: str,
    as_json: bool,
) -> None:
    """One job's state (and reason), or a table of jobs."""
    client = ApiClient(api_url)
    if job_id is not None:
        job: dict[str, Any] = call_api(client, "GET", f"/jobs/{job_id}")
        if as_json:
            click.echo(json.dumps(job))
            return
        cli_out().print(
            f"job {job['id']} (card {job['card_id']}, {len(job['apdus'])} APDUs): {job['state']}"
            + (f": {job['reason']}" if job["reason"] else ""),
            highlight=False,
        )
        return
    query = {"state": state or "", "iccid": iccid or "", "psk_identity": identity or "", "limit": str(limit)}
    listing: dict[str, Any] = call_api(client, "GET", "/jobs", query=query)
    if as_json:
        click.echo(json.dumps(listing["jobs"]))
    else:
        _print_jobs(listing["jobs"])


@ram.command()
@click.argument("job_id", type=int)
@refusal_option
@api_option
@json_option
def results(job_id: int, ok_on_refusal: bool, api_url: str, as_json: bool) -> None:
    """A job's results: every command with its response data and status word.

    Exits 4 when the card refused (a status word other than success, or the job failed on a PoR status other than
    00), unless --ok-on-refusal; 1 when the job has no results (not finished, cancelled, failed before the card)."""
    job: dict[str, Any] = call_api(ApiClient(api_url), "GET", f"/jobs/{job_id}")
    if as_json:
        click.echo(json.dumps({k: job[k] for k in ("id", "state", "reason", "results")}))
    elif job["state"] in _FINAL:
        _print_results(job)
    _exit_for(job, ok_on_refusal)


@ram.command()
@click.argument("job_id", type=int)
@api_option
@json_option
def cancel(job_id: int, api_url: str, as_json: bool) -> None:
    """Cancel a queued job (a job already sent to the card cannot be: exit 1)."""
    job: dict[str, Any] = call_api(ApiClient(api_url), "POST", f"/jobs/{job_id}/cancel")
    if as_json:
        click.echo(json.dumps(job))
    else:
        cli_out().print(f"job {job_id} {job['state']}", highlight=False)
