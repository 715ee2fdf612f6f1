"""Command line: `python -m queue_exp brokers up|down|status`, `cluster
up|down|status [--json]` (three-node clusters of both), `reset`, `serve`, and
`tool NAME ARGS...` (the brokers' own CLI tools, pointed at the configured brokers)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from queue_exp.errors import LauncherError


def _print_status() -> None:
    from queue_exp import brokers

    for name, info in brokers.status().items():
        state = "up" if info["reachable"] else "DOWN"
        line = f"{name:9} {state:5} {info['address']}"
        if info.get("managed"):
            pid = info.get("pid")
            line += f"  (embedded, pid {pid}, {info.get('rss_mb')} MiB)" if pid else "  (embedded)"
            if info.get("version"):
                line += f"  {'Kafka' if name == 'kafka' else 'RabbitMQ'} {info['version']}"
        else:
            line += "  (external)"
        print(line)
        if info.get("management_url"):
            print(f"{'':15} management UI: {info['management_url']}  (guest / guest)")
        if not info["reachable"]:
            print(f"{'':15} start it with: make brokers")


def brokers_command(args: argparse.Namespace) -> int:
    from queue_exp import brokers

    if args.action == "up":
        began = time.monotonic()
        result = brokers.up(timeout_s=args.timeout)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        for name, entry in result.items():
            how = "started" if entry["started"] else "already reachable"
            print(f"{name}: {how}")
        print(f"ready in {time.monotonic() - began:.1f} s")
        _print_status()
    elif args.action == "down":
        for name, stopped in brokers.down().items():
            print(f"{name}: {'stopped' if stopped else 'nothing to stop'}")
    else:
        _print_status()
    return 0


def _print_cluster_status(report: dict) -> None:
    kafka, rabbit = report["kafka"], report["rabbitmq"]
    print(f"Kafka cluster     {kafka['running']}/3 nodes running"
          + (f"  bootstrap servers: {kafka['bootstrap_servers']}"
             if kafka.get("bootstrap_servers") else ""))
    for node in kafka["nodes"]:
        print(f"  node {node['id']}  {_node_state(node)}  {node['address']}")
    print(f"RabbitMQ cluster  {rabbit['running']}/3 nodes running")
    for node in rabbit["nodes"]:
        print(f"  {node['name']}  {_node_state(node)}  {node['amqp_url']}"
              f"  management UI: {node['management_url']}")
    if not kafka["running"] and not rabbit["running"]:
        print("start both with: make cluster (python -m queue_exp cluster up)")


def _node_state(node: dict) -> str:
    if not node["running"]:
        return "down" + " " * 24
    return f"up  pid {node['pid']:<7} {node['rss_mb']:>6.0f} MiB"


def cluster_command(args: argparse.Namespace) -> int:
    from queue_exp.brokers import cluster

    names = [args.only] if args.only else list(cluster.BROKERS)
    if args.action == "up":
        began = time.monotonic()
        result = cluster.up(names, timeout_s=args.timeout)
        if not args.json:
            for name, outcome in result.items():
                started = outcome["started"]
                how = (f"started node{'s' if len(started) > 1 else ''} "
                       f"{', '.join(map(str, started))}" if started else "already running")
                print(f"{name} cluster: {how}")
            print(f"ready in {time.monotonic() - began:.1f} s")
    elif args.action == "down":
        for name, stopped in cluster.down(names, purge=args.purge).items():
            print(f"{name} cluster: {'stopped' if stopped else 'nothing to stop'}"
                  + (" (data deleted)" if args.purge else ""))
        return 0
    report = cluster.status()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_cluster_status(report)
    return 0


def reset_command(args: argparse.Namespace) -> int:
    from queue_exp import namespaces
    from queue_exp.config import get_settings

    namespace = args.namespace or get_settings().namespace
    if not namespace:
        print("error: name the namespace to reset: --namespace NAME (or set "
              "QUEUE_EXP_NAMESPACE); without one, reset would not know what is yours",
              file=sys.stderr)
        return 2
    found = namespaces.reset(namespace, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"namespace {namespace}: {verb} {namespaces.summary(found)}")
    for kind, names in found.items():
        for name in names:
            print(f"  {kind[:-1]:9} {name}")
    return 0


def tool_command(args: argparse.Namespace) -> int:
    from queue_exp.brokers.tools import tool

    run = tool(args.name, *args.args, timeout_s=args.timeout)
    if run.stdout:
        sys.stdout.write(run.stdout)
    if run.stderr:
        sys.stderr.write(run.stderr)
    return run.returncode


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from queue_exp.api import app
    from queue_exp.api.live import end_streams

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            # an open /live page's stream never ends by itself: end it, or Ctrl-C
            # would wait for it
            end_streams(app)
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info")).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queue_exp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("brokers", help="start, stop or show the brokers")
    b.add_argument("action", choices=["up", "down", "status"])
    b.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each")
    b.add_argument("--json", action="store_true", help="print the state entries as JSON")
    b.set_defaults(func=brokers_command)
    c = sub.add_parser("cluster", help="three Kafka and three RabbitMQ nodes, for the "
                       "replication lessons (beside the single brokers)")
    c.add_argument("action", choices=["up", "down", "status"])
    c.add_argument("--json", action="store_true", help="print the status as JSON")
    c.add_argument("--only", choices=["kafka", "rabbitmq"], help="one of the two clusters")
    c.add_argument("--purge", action="store_true", help="down: delete the nodes' data too")
    c.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each")
    c.set_defaults(func=cluster_command)
    r = sub.add_parser("reset", help="delete every topic, group, queue and exchange of a namespace")
    r.add_argument("--namespace", help="default: QUEUE_EXP_NAMESPACE")
    r.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    r.set_defaults(func=reset_command)
    from queue_exp.brokers.tools import TOOLS

    t = sub.add_parser("tool", help="a broker's own command-line tool, pointed at the "
                       "configured brokers (e.g. tool kafka-topics --list)")
    t.add_argument("name", choices=TOOLS)
    t.add_argument("args", nargs=argparse.REMAINDER, help="the tool's own arguments")
    t.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    t.set_defaults(func=tool_command)
    s = sub.add_parser("serve", help="run the API (uvicorn)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(func=serve_command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "pika", "httpx"):  # their INFO lines narrate every connection
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except (LauncherError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
