"""Throttle benchmark: how close the SP-API client gets to an operation's rate limit without being throttled, and
how many throttle decisions per second the deployed mode's Postgres state takes.

Starts a local emulator with getListingsItem scaled to 20 requests/s (burst 10, Amazon's documented burst), then
makes N calls from several threads of one process, and again from several processes sharing one state directory.
Ideal time = (calls − burst) / rate; efficiency = ideal / elapsed. Run: ``uv run python -m bench.throttle``.

Then the Postgres figure (a private cluster, or `--dsn`; skipped when Postgres's server binaries are missing): throttle
decisions (`Throttle.reserve`, every one a grant that writes the bucket and the seller's minute and day windows) per
second from one process, then from 50 processes of ONE seller (one bucket, one seller's windows: they take turns)
and from 50 processes of 50 sellers (different rows: they must not serialize). Its line is
``throttle-postgres: one_process=D one_seller=D fifty_sellers=D`` (decisions per second).
The last line is ``throttle: efficiency=E throttled=T calls=N`` (E = the worse of the two emulator phases).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from resources.spapi import RetryPolicy, SpApiClient, Throttle, UsagePlan

if TYPE_CHECKING:  # the emulator is imported only when it runs: the Postgres figure's 50 processes stay small
    from emulator.server import EmulatorServer

SELLER = "A3DEMOSELLER01"
US = "ATVPDKIKX0DER"
OPERATION = "getListingsItem"
DOCUMENTED_RATE, BURST = 5.0, 10  # getListingsItem's usage plan in listingsItems_2021-08-01.json


def _client(url: str, token_url: str, creds: dict[str, str], state_dir: str, rate: float) -> SpApiClient:
    return SpApiClient(
        seller_id=SELLER,
        **creds,
        endpoint=url,
        token_url=token_url,
        state_dir=state_dir,
        requests_per_minute=0,  # the global caps would dominate; this measures the per-operation bucket
        requests_per_day=0,
        usage_plans={OPERATION: UsagePlan(rate=rate, burst=BURST)},
        retry=RetryPolicy(max_attempts=5, max_total_seconds=60, backoff_base=0.1, backoff_cap=1.0),
    )


def _calls(client: SpApiClient, skus: list[str]) -> None:
    for sku in skus:
        client.get_listings_item(sku, [US])


def _phase_threads(server: EmulatorServer, creds: dict, state: str, skus: list[str], threads: int, rate: float):
    client = _client(server.url, server.token_url, creds, state, rate)
    client._provider_for(None).token()  # LWA outside the timing
    parts = [skus[i::threads] for i in range(threads)]
    started = time.time()
    workers = [threading.Thread(target=_calls, args=(client, part)) for part in parts]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.time() - started
    totals = client.counters.by_operation[OPERATION]
    client.close()
    return elapsed, totals.throttled, totals.calls, totals.errors


def _process_main(url, token_url, creds, state, skus, rate, barrier, queue) -> None:
    client = _client(url, token_url, creds, state, rate)
    client._provider_for(None).token()
    barrier.wait(60)
    started = time.time()
    _calls(client, skus)
    ended = time.time()
    totals = client.counters.by_operation[OPERATION]
    queue.put((started, ended, totals.throttled, totals.calls, totals.errors))
    client.close()


def _phase_processes(server: EmulatorServer, creds: dict, state: str, skus: list[str], procs: int, rate: float):
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    args = [(server.url, server.token_url, creds, state, skus[i::procs], rate, barrier, queue) for i in range(procs)]
    workers = [ctx.Process(target=_process_main, args=a) for a in args]
    for w in workers:
        w.start()
    results = [queue.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(60)
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    return elapsed, sum(r[2] for r in results), sum(r[3] for r in results), sum(r[4] for r in results)


# -- decisions per second on Postgres ---------------------------------------------------------------------------------
def _decisions(dsn: str, seller: str, seconds: float, barrier: Any, queue: Any) -> None:  # a spawned process
    # Caps and bucket far above what can be asked: every decision is a grant, the full write path.
    throttle = Throttle(dsn=dsn, requests_per_minute=10**9, requests_per_day=10**9)
    throttle.reserve(seller, OPERATION, 1e9, 10**9)  # connection and bucket row outside the timing
    barrier.wait(300)
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        throttle.reserve(seller, OPERATION, 1e9, 10**9)
        latencies.append(time.perf_counter() - started)
    throttle.close()
    queue.put(latencies)


def _phase_decisions(dsn: str, sellers: list[str], seconds: float) -> tuple[int, float, float, float]:
    """(decisions, decisions/s, p50 ms, p99 ms) of one process per entry of `sellers`, all started together."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(len(sellers)), ctx.Queue()
    workers = [ctx.Process(target=_decisions, args=(dsn, seller, seconds, barrier, queue)) for seller in sellers]
    for w in workers:
        w.start()
    latencies = sorted(x for _ in workers for x in queue.get(timeout=600))
    for w in workers:
        w.join(60)
    n = len(latencies)
    return n, n / seconds, latencies[n // 2] * 1000, latencies[min(n - 1, int(n * 0.99))] * 1000


@contextmanager
def _postgres(dsn: str | None) -> Iterator[str | None]:
    """`dsn`, or a private cluster's database for the run (None when Postgres's server binaries are missing)."""
    if dsn:
        yield dsn
        return
    from deploy.stack import Postgres, _pg_bin, free_port

    try:
        _pg_bin()
    except RuntimeError:
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="bench-throttle-pg-"))
    base.chmod(0o755)  # under root the cluster runs as `postgres`, which must reach its directory
    pg = Postgres(base / "postgres", free_port()).start()
    try:
        yield f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.database}"
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def postgres_figure(dsn: str | None, processes: int, seconds: float) -> list[str]:
    """The lines of the Postgres figure (or why it was skipped)."""
    with _postgres(dsn) as url:
        if url is None:
            return ["throttle-postgres: skipped (no Postgres server binaries: `make postgres` installs them)"]
        run = uuid.uuid4().hex[:8]  # sellers of this run only, whatever the database already holds
        phases = [
            ("1 process", [f"BENCH{run}S0@eu"]),
            (f"{processes} proc, 1 seller", [f"BENCH{run}S1@eu"] * processes),
            (f"{processes} proc, {processes} sel", [f"BENCH{run}T{i}@eu" for i in range(processes)]),
        ]
        rows = [(label, _phase_decisions(url, sellers, seconds)) for label, sellers in phases]
    lines = [
        f"Postgres throttle decisions ({seconds:g} s per phase; a decision = one reserve(), a grant with both caps on)",
        f"{'phase':<22} {'decisions':>9} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7}",
    ]
    for label, (n, rate, p50, p99) in rows:
        lines.append(f"{label:<22} {n:>9} {rate:>8.0f} {p50:>7.2f} {p99:>7.2f}")
    one, same, spread = (row[1][1] for row in rows)
    lines.append(f"throttle-postgres: one_process={one:.0f} one_seller={same:.0f} fifty_sellers={spread:.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate-scale", type=float, default=4.0, help="emulator rate multiplier (4 → 20 req/s)")
    parser.add_argument("--dsn", help="Postgres URL for the decisions figure (default: a private cluster)")
    parser.add_argument("--pg-processes", type=int, default=50)
    parser.add_argument("--pg-seconds", type=float, default=5.0)
    parser.add_argument("--no-postgres", action="store_true", help="skip the Postgres figure")
    parser.add_argument("--no-emulator", action="store_true", help="only the Postgres figure")
    args = parser.parse_args(argv)
    if args.no_emulator:
        for line in postgres_figure(args.dsn, args.pg_processes, args.pg_seconds):
            print(line)
        return 0
    from emulator.server import EmulatorOptions, EmulatorServer

    rate = DOCUMENTED_RATE * args.rate_scale
    ideal = (args.calls - BURST) / rate
    work = Path(tempfile.mkdtemp(prefix="bench-throttle-"))
    rows: list[tuple[str, float, int, int, int]] = []
    try:
        options = EmulatorOptions(synthetic=200, rate_scale=args.rate_scale, feed_step_seconds=0.0)
        with EmulatorServer(options) as server:
            creds_obj = server.state.store.tokens.credentials
            creds = {
                "client_id": creds_obj.client_id,
                "client_secret": creds_obj.client_secret,
                "refresh_token": creds_obj.refresh_token,
            }
            control = httpx.get(f"{server.url}/_emulator/listings", params={"marketplaceId": US}, timeout=30)
            listing_skus = [row["sku"] for row in control.json()["listings"]]
            skus = [listing_skus[i % len(listing_skus)] for i in range(args.calls)]
            phases = [
                (f"{args.threads} threads", _phase_threads, args.threads),
                (f"{args.processes} processes", _phase_processes, args.processes),
            ]
            for index, (label, phase, width) in enumerate(phases):
                time.sleep(BURST / rate + 0.5)  # let the emulator's bucket refill to its burst
                elapsed, throttled, calls, errors = phase(server, creds, str(work / f"state{index}"), skus, width, rate)
                rows.append((label, elapsed, throttled, calls, errors))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pg_lines = [] if args.no_postgres else postgres_figure(args.dsn, args.pg_processes, args.pg_seconds)
    print(f"{OPERATION}: rate {rate:g} req/s, burst {BURST}, {args.calls} calls per phase, ideal {ideal:.2f} s")
    print(f"{'phase':<14} {'calls':>6} {'429s':>5} {'errors':>6} {'elapsed':>8} {'ideal':>7} {'efficiency':>10}")
    for label, elapsed, throttled, calls, errors in rows:
        ratio = ideal / elapsed
        print(f"{label:<14} {calls:>6} {throttled:>5} {errors:>6} {elapsed:>7.2f}s {ideal:>6.2f}s {ratio:>10.3f}")
    for line in pg_lines:
        print(line)
    efficiency = min(ideal / row[1] for row in rows)
    throttled = sum(row[2] for row in rows)
    calls = sum(row[3] for row in rows)
    print(f"throttle: efficiency={efficiency:.3f} throttled={throttled} calls={calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
