"""Throttle benchmark: how close the SP-API client gets to an operation's rate limit without being throttled.

Starts a local emulator with getListingsItem scaled to 20 requests/s (burst 10, Amazon's documented burst), then
makes N calls from several threads of one process, and again from several processes sharing one state directory.
Ideal time = (calls − burst) / rate; efficiency = ideal / elapsed. Run: ``uv run python -m bench.throttle``.
The last line is ``throttle: efficiency=E throttled=T calls=N`` (E = the worse of the two phases).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from emulator.server import EmulatorOptions, EmulatorServer
from resources.spapi import RetryPolicy, SpApiClient, UsagePlan

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate-scale", type=float, default=4.0, help="emulator rate multiplier (4 → 20 req/s)")
    args = parser.parse_args(argv)
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
    print(f"{OPERATION}: rate {rate:g} req/s, burst {BURST}, {args.calls} calls per phase, ideal {ideal:.2f} s")
    print(f"{'phase':<14} {'calls':>6} {'429s':>5} {'errors':>6} {'elapsed':>8} {'ideal':>7} {'efficiency':>10}")
    for label, elapsed, throttled, calls, errors in rows:
        ratio = ideal / elapsed
        print(f"{label:<14} {calls:>6} {throttled:>5} {errors:>6} {elapsed:>7.2f}s {ideal:>6.2f}s {ratio:>10.3f}")
    efficiency = min(ideal / row[1] for row in rows)
    throttled = sum(row[2] for row in rows)
    calls = sum(row[3] for row in rows)
    print(f"throttle: efficiency={efficiency:.3f} throttled={throttled} calls={calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
