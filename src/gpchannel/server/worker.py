"""A worker process: the SCP80 campaign worker alone, no listeners (scale-out: more
workers for more SMS throughput).

Several such processes, on one machine or several, share one PostgreSQL and split the campaigns' SMS jobs
without any coordination of their own: each claims jobs with ``FOR UPDATE SKIP LOCKED`` under a lease
(Repository.claim_jobs), advances the card's counter in the same transaction as the send (Repository.mark_sent),
and renews its leases while it holds the jobs. When a process dies, its leases run out and the others take the
QUEUED jobs it held; the jobs it had already SENT are settled by the SENT-timeout rule of
:mod:`gpchannel.server.scp80_worker` (failed, outcome unknown: never resent, since the card may have run them).

Entry points: ``gpchannel server --worker-only --db URL --smpp HOST:PORT`` (the server's CLI, through
:func:`run_worker_process`), and ``python -m gpchannel.server.worker --db URL --smpp HOST:PORT`` (the same, with
the worker's knobs as options: tests and benchmarks start it so). The knobs come from :class:`WorkerOptions`,
whose defaults can be set in the environment (``GPCHANNEL_WORKER_LEASE_SECONDS``, ``..._BATCH``,
``..._POLL_INTERVAL``, ``..._LINK_RATE``, ``..._MAX_IN_FLIGHT``, ``..._SMPP_WINDOW``): a short lease is what a
fault test wants, a long one what a WAN does.
The process prints ``ready`` once the store is open, and stops cleanly on SIGTERM / SIGINT (its leases are
released by expiry; nothing is half-written: every step is one transaction).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gpchannel.errors import GPChannelError
from gpchannel.server.campaigns import CampaignSettings
from gpchannel.server.config import ServerConfig, ServerServices, parse_address
from gpchannel.server.scp80_worker import Scp80Worker, WorkerSettings
from gpchannel.server.sender import SmsLink
from gpchannel.server.services import open_services
from gpchannel.smpp.client import OtaSmppClient
from gpchannel.smpp.session import DEFAULT_WINDOW

__all__ = ["ENV_PREFIX", "WorkerOptions", "main", "run_scp80_worker", "run_worker", "run_worker_process"]

_log = logging.getLogger("gpchannel.server.worker")
_log_scp80 = logging.getLogger("gpchannel.server.scp80_worker")

ENV_PREFIX = "GPCHANNEL_WORKER_"
DEFAULT_SMPP_PORT = 2775


@dataclass(frozen=True)
class WorkerOptions:
    """The worker's own knobs (see :class:`gpchannel.server.scp80_worker.WorkerSettings`)."""

    lease_seconds: float = 60.0
    """How long a claimed job stays ours without renewal: the time another worker waits before taking over."""
    batch: int = 100
    """Jobs claimed per round."""
    poll_interval: float = 0.2
    link_rate: float = 100.0
    """submit_sm per second on this process's bind."""
    max_in_flight: int = 5000
    """Jobs held at most (claimed, or sent and waiting for their PoR): the worker claims no more beyond."""
    smpp_window: int = DEFAULT_WINDOW
    """submit_sm in flight at most on the bind, before their submit_sm_resp (SMPP 3.4 2.8: the SMSC's contract)."""

    def __post_init__(self) -> None:
        if not self.lease_seconds > 0 or not self.poll_interval > 0 or not self.link_rate > 0:
            raise ValueError("lease_seconds, poll_interval and link_rate must be positive")
        if self.batch < 1 or self.max_in_flight < 1 or self.smpp_window < 1:
            raise ValueError(
                f"batch, max_in_flight and smpp_window must be at least 1, got {self.batch}, {self.max_in_flight}, "
                f"{self.smpp_window}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerOptions:
        """The defaults, overridden by ``GPCHANNEL_WORKER_<FIELD>`` variables; ValueError naming a bad one."""
        env = os.environ if environ is None else environ
        values: dict[str, float | int | str] = {}
        knobs = (
            ("lease_seconds", float),
            ("batch", int),
            ("poll_interval", float),
            ("link_rate", float),
            ("max_in_flight", int),
            ("smpp_window", int),
        )
        for name, kind in knobs:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{name.upper()}: {raw!r} is not a number") from None
        return cls(**values)  # type: ignore[arg-type]


async def run_worker(
    services: ServerServices, *, stop: asyncio.Event, options: WorkerOptions | None = None
) -> dict[str, int]:
    """Run the SCP80 worker on ``services`` (SMSC: the first of ``services.config.smpp``) until ``stop``.
    The bind's system_id, password and source address and the campaign defaults (rate, attempts, PoR timeout)
    are the config's, as for the server's own SCP80 worker. Returns the worker's counts (claimed, sent, done,
    failed, ...). ValueError when no SMSC is configured."""
    options = options or WorkerOptions.from_env()
    config = services.config
    if not config.smpp:
        raise ValueError("a worker needs an SMSC: --smpp HOST:PORT")
    host, port = parse_address(config.smpp[0], DEFAULT_SMPP_PORT)
    settings = WorkerSettings(
        batch=options.batch,
        max_in_flight=options.max_in_flight,
        lease_seconds=options.lease_seconds,
        poll_interval=options.poll_interval,
        link_rate=options.link_rate,
        link_burst=max(1, int(options.link_rate)),
        defaults=CampaignSettings(
            rate=config.campaign_rate,
            max_attempts=config.campaign_max_attempts,
            por_timeout=config.campaign_por_timeout,
        ),
    )

    async def connect() -> SmsLink:
        return await OtaSmppClient.connect(
            host, port, config.smpp_system_id, config.smpp_password, source_addr=config.source_addr,
            window=options.smpp_window,
        )  # fmt: skip

    worker = Scp80Worker(services, None, owner=config.owner, settings=settings, connect=connect)
    _log.info("worker %s: SMSC %s:%d, lease %g s", config.owner, host, port, options.lease_seconds)
    try:
        await worker.run(stop)
    finally:
        if worker.link is not None:
            await worker.link.close()
    return dict(vars(worker.stats))


async def run_scp80_worker(services: ServerServices, *, owner: str, stop: asyncio.Event) -> None:
    """The SCP80 worker of a server process, bound to the SMSC of ``services.config`` until ``stop`` is set.

    ServerConfig: ``smpp`` (the first ``host:port``), ``smpp_system_id``, ``smpp_password``, ``source_addr``, and
    the campaign defaults ``campaign_rate``, ``campaign_max_attempts``, ``campaign_por_timeout`` (for jobs without
    a campaign and the keys a campaign's settings leave out). Returns at once when no SMSC is configured. The bind
    is made at the first send and again whenever it is lost.
    """
    config = services.config
    if not config.smpp:
        _log_scp80.info("no SMSC configured (--smpp): no SCP80 worker")
        return
    host, port = parse_address(config.smpp[0], 2775)
    defaults = CampaignSettings(
        rate=config.campaign_rate,
        max_attempts=config.campaign_max_attempts,
        por_timeout=config.campaign_por_timeout,
    )

    async def connect() -> SmsLink:
        return await OtaSmppClient.connect(
            host, port, config.smpp_system_id, config.smpp_password, source_addr=config.source_addr
        )

    worker = Scp80Worker(services, None, owner=owner, settings=WorkerSettings(defaults=defaults), connect=connect)
    _log_scp80.info("SCP80 worker %s: SMSC %s:%d as %r", owner, host, port, config.smpp_system_id)
    try:
        await worker.run(stop)
    finally:
        if worker.link is not None:
            await worker.link.close()


async def run_worker_process(
    config: ServerConfig,
    stop: asyncio.Event,
    *,
    options: WorkerOptions | None = None,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, int]:
    """A whole worker process: open the store and the key provider (as the server does), run the worker until
    ``stop``, close the store."""
    services = await asyncio.to_thread(open_services, config)
    try:
        if on_ready is not None:
            on_ready()
        return await run_worker(services, stop=stop, options=options)
    finally:
        await asyncio.to_thread(services.repository.close)


def _parser() -> argparse.ArgumentParser:
    defaults = WorkerOptions()
    p = argparse.ArgumentParser(prog="python -m gpchannel.server.worker", description=__doc__.split("\n")[0])
    p.add_argument("--db", required=True, help="SQLAlchemy URL of the shared store (postgresql+psycopg://...)")
    p.add_argument("--smpp", required=True, help="SMSC HOST:PORT")
    p.add_argument("--data", type=Path, default=Path(), help="data directory (master.key)")
    p.add_argument("--owner", help="this process's name in leases (default host:pid)")
    p.add_argument("--lease-seconds", type=float, help=f"lease time (default {defaults.lease_seconds:g})")
    p.add_argument("--batch", type=int, help=f"jobs claimed per round (default {defaults.batch})")
    p.add_argument("--poll-interval", type=float, help=f"seconds between rounds (default {defaults.poll_interval})")
    p.add_argument("--link-rate", type=float, help=f"submit_sm per second (default {defaults.link_rate:g})")
    p.add_argument("--max-in-flight", type=int, help=f"jobs held at most (default {defaults.max_in_flight})")
    p.add_argument(
        "--smpp-window", type=int, help=f"submit_sm awaiting their _resp at most (default {defaults.smpp_window})"
    )
    p.add_argument("--system-id", default="gpchannel", help="SMPP system_id")
    p.add_argument("--password", default=os.environ.get("GPCHANNEL_SMPP_PASSWORD", ""), help="SMPP password")
    p.add_argument("--source-addr", default="0", help="the OTA server's address (TP-OA)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpchannel.server.worker``: exit 0 after SIGTERM / SIGINT, 1 on a failure, 2 on bad options."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        options = WorkerOptions.from_env()
        changes = {
            name: getattr(args, name)
            for name in ("lease_seconds", "batch", "poll_interval", "link_rate", "max_in_flight", "smpp_window")
            if getattr(args, name) is not None
        }
        options = replace(options, **changes)
        config = ServerConfig(
            data_dir=args.data,
            db_url=args.db,
            smpp=(args.smpp,),
            smpp_system_id=args.system_id,
            smpp_password=args.password,
            source_addr=args.source_addr,
            worker_only=True,
        )
        if args.owner:
            config = replace(config, owner=args.owner)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def serve() -> dict[str, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await run_worker_process(config, stop, options=options, on_ready=lambda: print("ready", flush=True))

    try:
        stats = asyncio.run(serve())
    except (GPChannelError, OSError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("worker: stopped; " + ", ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
