"""``gpchannel server token create|list|revoke`` (the job API's tokens, server/tokens.py) and ``gpchannel audit
verify|export`` (the hash-chained audit log, server/audit.py), run on the server's store directly (``--data DIR``
or ``--db URL``), so they need no token themselves: whoever can write the store is an administrator anyway.

``token create`` prints the token and nothing else on stdout (``T=$(gpchannel server token create ...)``); it is
never stored, only its salted hash. ``audit verify`` exits 0 when the chain is whole, 1 naming every edited,
deleted or inserted record; ``audit export --json`` prints the records and the head hash to keep elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from gpchannel.cli.api_client import cli_fail, cli_out
from gpchannel.cli.settings import EXIT_FAILURE, EXIT_USAGE
from gpchannel.errors import GPChannelError

__all__ = ["audit", "token"]

_F = TypeVar("_F", bound=Callable[..., Any])


def store_options(fn: _F) -> _F:
    fn = click.option(
        "--db", "db_url", envvar="GPCHANNEL_DB", help="SQLAlchemy URL (default: the SQLite store in --data)."
    )(fn)
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(),
        help="The server's data directory.",
    )(fn)


@contextmanager
def _repository(data_dir: Path, db_url: str | None, *, create: bool = False) -> Iterator[Any]:
    from gpchannel.server.config import ServerConfig
    from gpchannel.server.repository import Repository

    url = ServerConfig(data_dir=data_dir, db_url=db_url).database_url
    if create:
        data_dir.mkdir(parents=True, exist_ok=True)  # a first token before the server's first start
    elif db_url is None and not (data_dir / "gpchannel-server.db").exists():
        cli_fail(f"no server store in {data_dir} (give --data DIR or --db URL)", EXIT_USAGE)
    try:
        repo = Repository(url)
    except GPChannelError as exc:
        cli_fail(f"cannot open the store: {exc}", EXIT_FAILURE)
    try:
        yield repo
    except GPChannelError as exc:
        cli_fail(str(exc), EXIT_FAILURE)
    finally:
        repo.close()


@click.group(name="token")
def token() -> None:
    """API tokens of the job API (create, list, revoke)."""


@token.command(name="create")
@store_options
@click.option("--name", required=True, help="The token's name: the principal in the audit log.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["read", "push-ram", "push-rfm", "campaign", "keys", "admin"]),
    help="A scope it grants; repeatable (admin grants all).",
)
@click.option("--cards", "cards_tag", help="Only the cards carrying this inventory tag.")
@click.option("--expires", help="Lifetime, e.g. 90d, 12h (default: until revoked).")
@click.option("--rate", type=float, help="Requests per second (overrides the server's --api-rate).")
@click.option("--scripts-per-hour", type=int, help="Scripts per hour (overrides --api-scripts-per-hour).")
@click.option("--max-campaign-cards", type=int, help="Cards per campaign (overrides --api-max-campaign-cards).")
def create(
    data_dir: Path,
    db_url: str | None,
    name: str,
    scopes: tuple[str, ...],
    cards_tag: str | None,
    expires: str | None,
    rate: float | None,
    scripts_per_hour: int | None,
    max_campaign_cards: int | None,
) -> None:
    """Create a token and print it (only it) on stdout: it is shown this once."""
    from gpchannel.server.tokens import create_token, parse_duration

    now = datetime.now(UTC)
    limits = {
        k: float(v)
        for k, v in (("rate", rate), ("scripts_per_hour", scripts_per_hour), ("max_campaign_cards", max_campaign_cards))
        if v is not None
    }
    try:
        expires_at = now + parse_duration(expires) if expires else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    with _repository(data_dir, db_url, create=True) as repo:
        try:
            secret = create_token(
                repo, name=name, scopes=scopes, now=now, cards_tag=cards_tag, expires_at=expires_at, limits=limits
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(secret)


@token.command(name="list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(data_dir: Path, db_url: str | None, as_json: bool) -> None:
    """The tokens: name, scopes, card tag, state (never the token: it is not stored)."""
    from gpchannel.server.tokens import list_tokens

    now = datetime.now(UTC)
    with _repository(data_dir, db_url) as repo:
        tokens = list_tokens(repo)
    if as_json:
        click.echo(json.dumps([t.to_json(now) for t in tokens], indent=2))
        return
    table = Table(title="API tokens")
    for column in ("name", "scopes", "cards", "state", "expires"):
        table.add_column(column)
    for t in tokens:
        expires = t.expires_at.isoformat(timespec="seconds") if t.expires_at else "-"
        table.add_row(t.name, ",".join(t.scopes), t.cards_tag or "all", t.state(now), expires)
    cli_out().print(table)


@token.command(name="revoke")
@store_options
@click.argument("name")
def revoke(data_dir: Path, db_url: str | None, name: str) -> None:
    """Revoke the token NAME at once (the next request with it gets 401)."""
    from gpchannel.server.tokens import revoke_token

    with _repository(data_dir, db_url) as repo:
        if not revoke_token(repo, name, now=datetime.now(UTC)):
            cli_fail(f"no active token named {name!r}", EXIT_FAILURE)
    click.echo(f"revoked {name}")


@click.group(name="audit")
def audit() -> None:
    """The server's hash-chained audit log (verify, export)."""


@audit.command(name="verify")
@store_options
@click.option("--head", help="A head hash exported earlier (audit export): it must still be in the chain.")
def verify(data_dir: Path, db_url: str | None, head: str | None) -> None:
    """Check the chain: every edited, deleted or inserted record is named; exit 1 if any."""
    from gpchannel.server.audit import verify as verify_chain

    with _repository(data_dir, db_url) as repo:
        report = verify_chain(repo.engine, head=head)
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}")
    click.echo(f"{report.records} record(s), head {report.head}")
    if not report.ok:
        cli_fail(f"the audit chain is broken: {len(report.problems)} problem(s)", EXIT_FAILURE)


@audit.command(name="export")
@store_options
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), help="From this UTC time on.")
@click.option("--json", "as_json", is_flag=True, help="JSON (the only format for now).")
def export(data_dir: Path, db_url: str | None, since: datetime | None, as_json: bool) -> None:
    """The records (time, principal, action, cards, campaign, job, script SHA-256, outcome, hashes)."""
    from gpchannel.server.audit import export as export_chain
    from gpchannel.server.audit import verify as verify_chain

    with _repository(data_dir, db_url) as repo:
        records = export_chain(repo.engine, since=since.replace(tzinfo=UTC) if since else None)
        head = verify_chain(repo.engine).head
    del as_json  # JSON is what export prints
    click.echo(json.dumps({"head": head, "records": records}, indent=2))
