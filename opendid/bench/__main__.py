"""`python -m opendid.bench chain | logins | credentials | endpoints | faults` (see `--help`)."""

from __future__ import annotations

import argparse
import logging

from opendid.bench import __doc__ as DOC


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m opendid.bench", description=DOC)
    sub = parser.add_subparsers(dest="what", required=True)
    chain = sub.add_parser("chain", help="chain reads per login: warm vs fresh connection")
    chain.add_argument("--runs", type=int, default=200)
    logins = sub.add_parser("logins", help="complete logins under gunicorn")
    logins.add_argument("-n", "--total", type=int, default=200)
    logins.add_argument("-k", "--concurrency", type=int, default=8)
    logins.add_argument("-w", "--workers", type=int, default=2)
    logins.add_argument("-t", "--threads", type=int, default=None,
                        help="threads per worker (default: opendid serve's)")
    logins.add_argument("--server-log", help="append gunicorn's output to this file")
    logins.add_argument("--server-cpus", help="pin the server to these CPUs (e.g. 0 or 0-1)")
    logins.add_argument("--client-cpus", help="pin the load generator to these CPUs (e.g. 1)")
    logins.add_argument("--profile", metavar="DIR",
                        help="sample each worker with py-spy into DIR (collapsed stacks)")
    logins.add_argument("--redis", action="store_true", help="state in a fresh redis-server")
    logins.add_argument("--rate", type=float,
                        help="offer this many logins per second (default: back to back)")
    creds = sub.add_parser("credentials", help="POST /api/v1/credentials alone, at N users")
    creds.add_argument("-n", "--total", type=int, default=400)
    creds.add_argument("-k", "--concurrency", type=int, default=32)
    creds.add_argument("-w", "--workers", type=int, default=2)
    creds.add_argument("-t", "--threads", type=int, default=None)
    creds.add_argument("--rate", type=float,
                       help="offer this many requests per second (default: back to back)")
    endpoints = sub.add_parser("endpoints", help="the app's CPU per endpoint, in process")
    endpoints.add_argument("-n", "--logins", type=int, default=200, help="logins per round")
    endpoints.add_argument("-r", "--rounds", type=int, default=5)
    endpoints.add_argument("--redis", action="store_true", help="state in a fresh redis-server")
    faults = sub.add_parser("faults", help="load with the chain (and Redis) cut mid-run")
    faults.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    faults.add_argument("--outage", type=float, default=60.0, help="seconds the chain is cut")
    faults.add_argument("-k", "--concurrency", type=int, default=32)
    faults.add_argument("-w", "--workers", type=int, default=2)
    faults.add_argument("--redis", action="store_true",
                        help="state in Redis, which is also stopped for a while")
    faults.add_argument("--server-log", help="append gunicorn's output to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.what == "chain":
        from opendid.bench.chain import bench_chain

        bench_chain(args.runs)
    elif args.what == "logins":
        from opendid.bench.logins import bench_logins

        bench_logins(args.total, args.concurrency, args.workers, args.server_log,
                     args.server_cpus, args.client_cpus, args.profile, args.redis, args.threads,
                     args.rate)
    elif args.what == "credentials":
        from opendid.bench.credentials import bench_credentials

        bench_credentials(args.total, args.concurrency, args.workers, args.threads, args.rate)
    elif args.what == "endpoints":
        from opendid.bench.endpoints import bench_endpoints

        bench_endpoints(args.logins, args.rounds, args.redis)
    else:
        from opendid.bench.faults import bench_faults

        bench_faults(args.duration, args.outage, args.concurrency, args.workers, args.redis,
                     args.server_log)


if __name__ == "__main__":
    main()
