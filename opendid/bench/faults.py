"""`python -m opendid.bench faults`: a bounded load-and-fault run (issue 8 §3).

Users log in continuously for `duration` seconds. A fifth of the way in, the server's
connection to the chain is cut (a TCP proxy between them stops: the node is gone as far as
OpenDID can tell) for `outage` seconds; with `--redis`, Redis is stopped for a while later on
(and comes back empty, as a Redis without persistence does). Every attempt is classified by
where it ended; worker memory is sampled every 10 s. Logins during an outage must fail with a
503, logins after it must succeed without restarting OpenDID, and there must be no 500.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from opendid.bench.server import BenchServer, bench_server, children, memory_mib
from opendid.devtools.login_driver import LoginDriver, result_params

MEMORY_EVERY = 10.0


def attempt(server: BenchServer) -> str:
    """One complete code login; "ok", or the status (or error) of the step that failed."""
    driver = LoginDriver(server.issuer, server.wallet, server.chain)
    try:
        steps = [
            (lambda: driver.authorize(client_id=server.client_id, redirect_uri=server.redirect,
                                      response_type="code", scope="openid", state="s",
                                      nonce="n"), 302),
            (driver.open_session, 200),
        ]
        for step, expected in steps:
            response = step()
            if response.status_code != expected:
                return str(response.status_code)
        driver.fetch_request()
        done = driver.submit()
        if done.status_code != 204:
            return str(done.status_code)
        code = result_params(done.headers["Location"])["code"]
        token = driver.token(grant_type="authorization_code", code=code,
                             redirect_uri=server.redirect, client_id=server.client_id,
                             client_secret=server.secret)
        return "ok" if token.status_code == 200 else str(token.status_code)
    except requests.HTTPError as exc:  # the driver's raise_for_status
        return str(exc.response.status_code) if exc.response is not None else "http error"
    except requests.RequestException as exc:
        return type(exc).__name__
    finally:
        driver.http.close()


def bench_faults(duration: float, outage: float, concurrency: int, workers: int, redis: bool,
                 server_log: str | None) -> None:
    with bench_server(workers, server_log, proxy=True, redis=redis) as server:
        assert server.proxy is not None
        assert attempt(server) == "ok", "the first login failed: nothing to measure"
        chain_down, chain_up = duration / 5, duration / 5 + outage
        redis_down = duration * 3 / 5
        redis_up = redis_down + min(20.0, outage)
        events: list[str] = []
        started = time.monotonic()

        def phase(at: float) -> str:
            if chain_down <= at < chain_up:
                return "chain cut"
            if redis and redis_down <= at < redis_up:
                return "redis down"
            return "before" if at < chain_down else "after chain" if at < redis_down or \
                not redis else "after redis"

        def faults() -> None:
            schedule = [(chain_down, "cut the chain", server.proxy.stop),  # type: ignore[union-attr]
                        (chain_up, "restore the chain", server.proxy.start)]  # type: ignore[union-attr]
            if redis and server.redis is not None:
                schedule += [(redis_down, "stop Redis", server.redis.stop),
                             (redis_up, "start Redis", server.redis.start)]
            for at, what, action in sorted(schedule, key=lambda item: item[0]):
                time.sleep(max(0.0, started + at - time.monotonic()))
                action()
                events.append(f"{time.monotonic() - started:6.1f} s  {what}")

        outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        lock = threading.Lock()

        def user(_: int) -> None:
            while (now := time.monotonic() - started) < duration:
                result = attempt(server)
                with lock:
                    outcomes[phase(now)][result] += 1

        memory: list[tuple[float, float, float]] = []

        def sample_memory() -> None:
            while time.monotonic() - started < duration:
                pids = children(server.process.pid)
                samples = [memory_mib(pid) for pid in pids]
                memory.append((time.monotonic() - started, sum(s["rss"] for s in samples),
                               sum(s["pss"] for s in samples)))
                time.sleep(MEMORY_EVERY)

        background = [threading.Thread(target=faults, daemon=True),
                      threading.Thread(target=sample_memory, daemon=True)]
        for thread in background:
            thread.start()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(user, range(concurrency)))
        for thread in background:
            thread.join(timeout=MEMORY_EVERY + 5)
        final = attempt(server)

    print(f"{duration:.0f} s of logins, {concurrency} users, gunicorn {workers} workers, "
          f"state in {'Redis' if redis else 'SQLite'}; chain cut for {outage:.0f} s"
          + (f", Redis stopped for {min(20.0, outage):.0f} s" if redis else ""))
    for line in events:
        print("  " + line)
    print(f"{'phase':14} {'outcome':>20} {'count':>7}")
    for name in ("before", "chain cut", "after chain", "redis down", "after redis"):
        for result, count in sorted(outcomes.get(name, {}).items()):
            print(f"{name:14} {result:>20} {count:7d}")
    all_results = collections.Counter[str]()
    for counter in outcomes.values():
        all_results.update(counter)
    print(f"500s: {all_results.get('500', 0)}; a login after the run: {final}")
    if memory:
        first, last = memory[0], memory[-1]
        peak = max(m[1] for m in memory)
        print(f"workers' RSS: {first[1]:.0f} MiB at {first[0]:.0f} s, {last[1]:.0f} MiB at "
              f"{last[0]:.0f} s (peak {peak:.0f}); PSS {first[2]:.0f} -> {last[2]:.0f} MiB")
        print("workers' RSS every 10 s (MiB): " + " ".join(f"{m[1]:.0f}" for m in memory))
