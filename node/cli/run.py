"""Commands that run nodes: run (one node until SIGTERM) and demo (a local network of processes)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from node.cli.common import until_stopped, apply_tls, command, tls_arguments
from node.errors import NodeError, UsageError
from node.home import NodeHome
from node.tasks import event_loop_runner, tune_collector, usable_cores


def run(args: argparse.Namespace) -> int:
    from node.service import Node

    logging.basicConfig(level=log_level(args).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    home = NodeHome(Path(args.home)).require()
    if args.enroll:
        _enrol_first(home, args)
    config = home.config()
    apply_tls(args, config)

    tune_collector()

    async def main() -> None:
        node = Node(home, host=args.host, port=args.port, admin_port=args.admin_port, bootstrap=args.bootstrap,
                    public_url=args.public_url,
                    mdns=False if args.no_mdns else None, mdns_interfaces=args.mdns_interface,
                    gossip_interval=args.gossip_interval, config=config, workers=_workers(args.workers),
                    event_loop=args.event_loop)
        await node.start()
        print(f"ready {node.url} admin {node.admin_url}", flush=True)
        renewing = asyncio.create_task(_keep_renewed(node, home, args)) if args.enroll else None
        await until_stopped()
        if renewing is not None:
            renewing.cancel()
        await node.stop()

    with event_loop_runner(args.event_loop) as runner:
        runner.run(main())
    return 0


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(args: argparse.Namespace) -> str:
    """--log-level, else warning with --quiet, else info. Nothing the node logs at any level names a client
    (tests/node/cli/test_processes.py reads every line the demo's nodes write at debug)."""
    return str(args.log_level or ("warning" if args.quiet else "info"))


def _workers(given: int | None) -> int:
    """--workers, else IWLZ_WORKERS, else one per core this process may use."""
    if given is None:
        text = os.environ.get("IWLZ_WORKERS", "").strip()
        try:
            given = int(text) if text else usable_cores()
        except ValueError:
            raise UsageError("IWLZ_WORKERS must be a whole number") from None
    if not 1 <= given <= 256:
        raise UsageError("--workers must be between 1 and 256")
    return given


RENEWED_WITH_LEFT = 3  # a certificate from the enrolment service is renewed once a third of its life is left
RENEWAL_RETRY = 3600.0  # seconds after a renewal that failed


def _renewal_due(home: NodeHome) -> float:
    """Seconds until the certificate is renewed from the enrolment service (0: now)."""
    member = home.member()
    return max(0.0, member.expires - (member.expires - member.not_before) / RENEWED_WITH_LEFT - time.time())


def _enrol_first(home: NodeHome, args: argparse.Namespace) -> None:
    """A node without a certificate obtains one from the test network's enrolment service; one that has one
    (a restart, a kept volume) keeps its identity and does not enrol again, but renews its certificate (the same
    key) when a third of its life or less is left, or it has ended."""
    if home.certificate_path.exists():
        if _renewal_due(home) > 0:
            return
        try:
            _enrol(home, args, wait=args.enroll_wait)
        except NodeError as exc:
            if home.member().expires <= time.time():
                raise
            logging.getLogger("iwlz.enrol").warning("could not renew the certificate yet: %s", exc)
        return
    _enrol(home, args, wait=args.enroll_wait)


async def _keep_renewed(node: Any, home: NodeHome, args: argparse.Namespace) -> None:
    """While the node runs: its certificate renewed from the enrolment service, and taken up, before it ends (an
    enrolment's is short: 30 days by default), as long as the token is accepted (a reusable one)."""
    log = logging.getLogger("iwlz.enrol")
    while True:
        try:
            await asyncio.sleep(min(_renewal_due(home), 24 * 3600.0))
            if _renewal_due(home) > 0:
                continue
            await asyncio.to_thread(_enrol, home, args, wait=30.0)
            await node.reload_certificate()
        except NodeError as exc:
            log.warning("could not renew the certificate (again in %.0f s): %s", RENEWAL_RETRY, exc)
            await asyncio.sleep(RENEWAL_RETRY)


def _enrol(home: NodeHome, args: argparse.Namespace, *, wait: float) -> None:
    from node.enrol.joining import enrol_home

    if bool(args.token) == bool(args.token_file):
        raise UsageError("--enroll needs --token or --token-file")
    try:
        token = args.token or Path(args.token_file).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the token file {args.token_file}") from exc
    member = enrol_home(home, args.enroll, token, wait=wait)
    logging.getLogger("iwlz.enrol").info("enrolled as %s (%s), certificate %s", member.organisation, member.role,
                                         member.cert_id_hex)


def demo(args: argparse.Namespace) -> int:
    from node.cli.demo import run_demo, run_demo_against

    if args.against:
        return run_demo_against(Path(args.against))
    return run_demo(Path(args.dir), keep_running=not args.once, base_port=args.base_port, log_level=args.log_level)


def register(sub: Any) -> None:
    p = command(sub, "run", run, "run a node until interrupted")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--admin-port", type=int)
    p.add_argument("--public-url", help="the URL peers reach this node at (behind NAT, in containers)")
    p.add_argument("--bootstrap", action="append", default=None, metavar="URL")
    tls_arguments(p)
    p.add_argument("--no-mdns", action="store_true", help="do not announce or browse on the LAN")
    p.add_argument("--mdns-interface", action="append", metavar="IP", help="run mDNS only on this interface address")
    p.add_argument("--gossip-interval", type=float, help="seconds between gossip rounds (0: no gossip)")
    p.add_argument("--enroll", metavar="URL", help="test networks: obtain the certificate from this enrolment service "
                   "first, when the home has none, and renew it there (the same key) before it ends")
    p.add_argument("--token", help="the join token for --enroll (iwlz network enroll-token)")
    p.add_argument("--token-file", metavar="FILE", help="read the join token from FILE (a Docker secret)")
    p.add_argument("--enroll-wait", type=float, default=120.0, metavar="SECONDS",
                   help="how long to wait for the enrolment service to answer")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes answering queries on the one port (default: IWLZ_WORKERS, else one per core); "
                        "one of them owns every write")
    p.add_argument("--quiet", action="store_true", help="log warnings and errors only (--log-level warning)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="what the node logs to standard error (default: info)")
    p.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="auto: uvloop when installed")

    p = command(sub, "demo", demo, "run a local multi-party network on 127.0.0.1", home=False)
    p.add_argument("--dir", default="demo-network")
    p.add_argument("--once", action="store_true", help="walk through the scenarios, then stop")
    p.add_argument("--base-port", type=int, default=0)
    p.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                   help="what each node logs to node.log in its home (default: warning)")
    p.add_argument("--against", metavar="PARTIES.json",
                   help="tell the story to running nodes instead: {name: {admin: URL, token: T}} for each party")


__all__ = ["register"]
