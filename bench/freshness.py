"""Freshness benchmark: how long a competitor's price move takes to become our new price on Amazon, at Amazon's real
limits, with the deployment's own sensor, schedules and runs.

Set-up (all on 127.0.0.1, free ports, under `--workdir` or a temporary directory):
- one channel, `us` (seller A3DEMOSELLER01, the entry of the repository's channels.yaml), of `--skus` synthetic SKUs
  (`seller.synthetic`); every row of the competitor_prices file is stamped observed at the bench's start, so pricing
  starts from fresh data;
- Postgres, the instance of deploy/dagster.yaml and a live `dagster-daemon` (deploy.stack, as `make up` and the
  deploy test start them): runs are queued and launched as a deployment launches them, one per seller × region;
- a moto server for SQS and `spapi-emulator` seeded from the same files, at Amazon's documented rates (rate_scale 1,
  time_scale 1) with the Sales Channel module's caps on (30 requests a minute, 36,000 a day per seller); the client
  gets the same caps (`SPAPI_REQUESTS_PER_MINUTE`, `SPAPI_REQUESTS_PER_DAY`).

Prime, before the clock starts: one `channel_pipeline_job` run (through the daemon's queue) prices all SKUs from the
files (`fba_inventory`, `offer_observations` and `competitor_prices` offline: a full offers pull of 100,000 ASINs
takes ~14 hours at Amazon's 0.1 getItemOffersBatch/s) and pushes them (JSON_LISTINGS_FEED). It runs before the
channel's notification subscriptions exist: otherwise every one of our new prices becomes an Internal
ANY_OFFER_CHANGED, which moto's SQS (~25 messages/s) would take about an hour to hand over at 100,000 SKUs. Then
`enable_channel` wires the queue, destination and subscriptions and lets the schedules and the sensor act on the
channel.

Window (`--minutes`): the emulator moves competitors (`POST /_emulator/market {"movesPerMinute", "notifiedShare"}`);
a share of the ASINs is notified (ANY_OFFER_CHANGED), the rest stay silent. The daemon does the rest: the SQS sensor
applies the notifications and requests prices runs that reprice from the observations without pulling; the offers
pull job keeps its deployment cadence (`--pull-cron`, every 5 minutes, 270 s each: the budgeted pull, the only way a
silent move is ever seen) and so does the prices schedule (`--prices-cron`, every 15 minutes: it prices what the pull
saw when no notified run did; with --minutes 10 it fires once or not at all, depending on the clock: the table says
how often).
The inventory and full-pipeline schedules are off (their hourly and daily FBA pulls would take the seller's budget and
queue slot for reasons that are not this benchmark's). Then the moves stop and in-flight runs get `--drain-minutes`
to finish (done once nothing has been queued or running for a sensor interval and a tick).

Measured, in the emulator's clock, from `GET /_emulator/market` (every move and every price change of ours Amazon
accepted) and the channel's DuckDB (read after the daemon stopped):
- reaction time of a move: from the move to the first accepted price change of any of our SKUs on that ASIN after it
  (the channel_mappings file gives SKU → ASIN). `notified_p50_s`/`notified_p95_s`: over the notified moves that were
  repriced (nearest-rank percentiles; the emulator's timestamps have one-second resolution).
- `no_change_needed`: moves that left the ASIN's lowest competitor landed price (price + shipping, replayed from the
  file and the earlier moves) where it was, e.g. a competitor rising while not the lowest: our price has no reason to
  change, so such a move is never counted as repriced. `repriced` = the other moves followed by a price change of
  ours; a move that changes the lowest price can still leave ours unchanged (held at the floor or ceiling), and a
  silent move is repriced only when a pull saw it.
- `silent_max_age_min`: for the ASINs of the silent moves, how old the newest observation behind our price
  (offer_observations, any source, or the file's) was when the bench ended; the pull's coverage: distinct ASINs
  pulled (offer_snapshots, source 'pull', status 'ok') during the window and drain, per hour.
- `throttled`: 429s the emulator answered the seller (token buckets and module caps) from the window's start to the
  end; the client's own count (run metadata) is shown beside it, not added: it sees the same 429s from the other side.
- `requests_per_min`: the seller's SP-API requests during the window / its minutes (the cap is 30).

Ends with one line `freshness: notified_p50_s=A notified_p95_s=B silent_max_age_min=C moves=N repriced=R
throttled=T requests_per_min=Q` (n/a where nothing was measured).

    uv run python -m bench.freshness [--skus 100000] [--minutes 10] [--moves-per-minute 20] [--notified-share 0.5]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from deploy.stack import Postgres, free_port, instance_home, spawn, stop_process, wait_for_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHANNEL = "us"
CAP_PER_MINUTE, CAP_PER_DAY = 30, 36_000  # the Sales Channel module's caps per seller
NEVER = "0 0 1 1 *"  # the inventory and full-pipeline schedules (see the docstring)
OFFLINE = ("fba_inventory", "competitor_prices", "offer_observations")
PRIME_CONFIG = {"ops": {name: {"config": {"offline": True}} for name in OFFLINE}}
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
QUIET_SECONDS = 75.0  # the sensor's 30 s interval + a tick's SQS polls (TICK_BUDGET_SECONDS 40) + queueing


# -- the measurement (pure) -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Move:
    at: float  # emulated epoch seconds
    asin: str
    seller_id: str
    price: Decimal
    notified: bool


@dataclass(frozen=True)
class Outcome:
    move: Move
    needs_change: bool  # the ASIN's lowest competitor landed price changed
    reaction_s: float | None  # to our first accepted price change on the ASIN after the move (needs_change only)


@dataclass(frozen=True)
class Freshness:
    outcomes: tuple[Outcome, ...]
    silent_ages_min: tuple[float, ...]  # one per silent-move ASIN
    requests: int
    throttled: int
    minutes: float

    @property
    def moves(self) -> int:
        return len(self.outcomes)

    @property
    def no_change_needed(self) -> int:
        return sum(1 for o in self.outcomes if not o.needs_change)

    def reactions(self, notified: bool) -> list[float]:
        return [o.reaction_s for o in self.outcomes if o.move.notified == notified and o.reaction_s is not None]

    @property
    def repriced(self) -> int:
        return len(self.reactions(True)) + len(self.reactions(False))

    @property
    def notified_p50_s(self) -> float | None:
        return percentile(self.reactions(True), 50)

    @property
    def notified_p95_s(self) -> float | None:
        return percentile(self.reactions(True), 95)

    @property
    def silent_max_age_min(self) -> float | None:
        return max(self.silent_ages_min, default=None)

    @property
    def requests_per_min(self) -> float:
        return self.requests / self.minutes if self.minutes > 0 else 0.0

    def line(self) -> str:
        return (
            f"freshness: notified_p50_s={_fmt(self.notified_p50_s, 0)} notified_p95_s={_fmt(self.notified_p95_s, 0)} "
            f"silent_max_age_min={_fmt(self.silent_max_age_min, 1)} moves={self.moves} repriced={self.repriced} "
            f"throttled={self.throttled} requests_per_min={self.requests_per_min:.1f}"
        )


def _fmt(value: float | None, decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (an observed value); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def epoch(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (Z or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_moves(entries: Sequence[Mapping[str, Any]], marketplace_id: str) -> list[Move]:
    """The `moves` of GET /_emulator/market in one marketplace, in the order they happened."""
    moves = [
        Move(epoch(e["at"]), e["asin"], e["sellerId"], Decimal(e["price"]), bool(e["notified"]))
        for e in entries
        if e["marketplaceId"] == marketplace_id
    ]
    return sorted(moves, key=lambda m: m.at)  # stable: same-second moves keep the emulator's order


def _lowest(offers: Mapping[str, tuple[Decimal, Decimal]]) -> Decimal | None:
    return min((price + shipping for price, shipping in offers.values()), default=None)


def measure(
    moves: Sequence[Move],
    our_prices: Sequence[Mapping[str, Any]],
    *,
    seller_id: str,
    marketplace_id: str,
    asin_of_sku: Mapping[str, str],
    offers: Mapping[str, Mapping[str, tuple[Decimal, Decimal]]],
    newest_observation: Mapping[str, float],
    ended_at: float,
    requests: int,
    throttled: int,
    minutes: float,
) -> Freshness:
    """The benchmark's figures from what the emulator logged and what the channel observed.

    `moves`: the competitor moves of the window (`parse_moves`); `our_prices`: GET /_emulator/market's `ourPrices`
    (every seller; only `seller_id` in `marketplace_id` counts); `offers`: ASIN → competitor → (price, shipping)
    before the first move (the seeded file, the channel's own offers and, for `fba_only` channels, FBM ones left
    out); `newest_observation`: ASIN → epoch of the newest observation the channel holds; `ended_at`: the epoch the
    ages are taken at; `requests`/`throttled`: the seller's counts over the `minutes` of the window."""
    changes: dict[str, list[float]] = {}
    for entry in our_prices:
        if entry["sellerId"] != seller_id or entry["marketplaceId"] != marketplace_id:
            continue
        asin = asin_of_sku.get(entry["sku"]) or entry.get("asin")
        if asin:
            changes.setdefault(asin, []).append(epoch(entry["at"]))
    for times in changes.values():
        times.sort()
    current = {asin: dict(competitors) for asin, competitors in offers.items()}
    outcomes = []
    for move in moves:
        competitors = current.setdefault(move.asin, {})
        before = _lowest(competitors)
        _, shipping = competitors.get(move.seller_id, (move.price, Decimal(0)))
        competitors[move.seller_id] = (move.price, shipping)
        needs_change = _lowest(competitors) != before
        reaction = None
        if needs_change:
            times = changes.get(move.asin, [])
            after = bisect.bisect_right(times, move.at)  # strictly after: a change in the move's second predates it
            reaction = times[after] - move.at if after < len(times) else None
        outcomes.append(Outcome(move, needs_change, reaction))
    silent = {m.asin for m in moves if not m.notified}
    ages = tuple((ended_at - newest_observation[asin]) / 60 for asin in sorted(silent) if asin in newest_observation)
    return Freshness(tuple(outcomes), ages, requests, throttled, minutes)


def seller_counts(before: Mapping[str, Any], after: Mapping[str, Any], seller_id: str) -> tuple[dict[str, int], int]:
    """(requests per operation, 429s) of `seller_id` between two GET /_emulator/market answers."""
    then = before.get("requests", {}).get(seller_id, {})
    now = after.get("requests", {}).get(seller_id, {})
    requests = {op: n - then.get(op, 0) for op, n in now.items() if n - then.get(op, 0)}
    return requests, _throttled(after, seller_id) - _throttled(before, seller_id)


def _throttled(doc: Mapping[str, Any], seller_id: str, kind: str | None = None) -> int:
    """The seller's 429s in a GET /_emulator/market answer: of one kind ('bucket', 'cap') or all."""
    counts = doc.get("throttled", {}).get(seller_id, {})
    return counts.get(kind, 0) if kind else sum(counts.values())


# -- the seller's files -----------------------------------------------------------------------------------------------
def write_seller(base: Path, skus: int, observed_at: datetime) -> tuple[Path, Path]:
    """The channels file (the repository's `us` entry alone) and the data directory of `skus` synthetic SKUs, every
    competitor row observed at `observed_at`."""
    from seller.config import load_channels
    from seller.synthetic import generate

    entries = yaml.safe_load((REPO / "channels.yaml").read_text())["channels"]
    config = base / "channels.yaml"
    config.write_text(yaml.safe_dump({"channels": [e for e in entries if e["name"] == CHANNEL]}))
    data = base / "data"
    generate(data, skus, load_channels(config), now=observed_at)
    path = data / "competitor_prices.csv"
    with path.open(newline="") as src:
        reader = csv.DictReader(src)
        fields, rows = reader.fieldnames or [], list(reader)
    stamp = observed_at.isoformat()
    with path.open("w", newline="") as dst:
        writer = csv.DictWriter(dst, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**row, "observed_at": stamp} for row in rows)
    return config, data


def read_seller(data: Path, channel: Any) -> tuple[dict[str, str], dict[str, dict[str, tuple[Decimal, Decimal]]]]:
    """SKU → ASIN (channel_mappings) and ASIN → competitor → (price, shipping) as the emulator seeds them."""
    with (data / "channel_mappings.csv").open(newline="") as f:
        asin_of_sku = {r["sku"]: r["asin"] for r in csv.DictReader(f) if r["channel"] == channel.name and r["asin"]}
    offers: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}
    with (data / "competitor_prices.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if r["channel"] != channel.name or r["seller_id"] == channel.seller_id:
                continue
            if channel.pricing.compete_with == "fba_only" and r["fulfillment"].upper() != "FBA":
                continue
            offers.setdefault(r["asin"], {})[r["seller_id"]] = (Decimal(r["price"]), Decimal(r["shipping"] or 0))
    return asin_of_sku, offers


def read_observations(
    data: Path, asins: Sequence[str], since: float, until: float
) -> tuple[dict[str, float], dict[str, int] | None]:
    """ASIN → epoch of its newest offer observation in the channel's DuckDB, and the pull's counts between `since`
    and `until` (by recorded_at); ({}, None) when the channel has no offer_observations/offer_snapshots tables."""
    import duckdb

    from resources.warehouse import Warehouse

    warehouse = Warehouse(data_dir=str(data))
    if not warehouse.has_data(CHANNEL):
        return {}, None
    with warehouse.connect(CHANNEL) as con:
        try:
            newest = dict(
                con.execute(
                    "SELECT asin, epoch(max(observed_at)) FROM offer_observations WHERE list_contains($asins, asin) "
                    "GROUP BY asin",
                    {"asins": list(asins)},
                ).fetchall()
            )
            asins_ok, snapshots, failed = con.execute(
                "SELECT count(DISTINCT asin) FILTER (WHERE status = 'ok'), count(*), "
                "count(*) FILTER (WHERE status <> 'ok') FROM offer_snapshots "
                "WHERE source = 'pull' AND recorded_at BETWEEN to_timestamp($since) AND to_timestamp($until)",
                {"since": since, "until": until},
            ).fetchall()[0]
        except duckdb.CatalogException:
            return {}, None
    return newest, {"asins": asins_ok, "snapshots": snapshots, "failed": failed}


# -- the deployment ---------------------------------------------------------------------------------------------------
def emulator_command(port: int, data: Path, config: Path, sqs: str) -> list[str]:
    return [
        str(BIN / "spapi-emulator"), "--port", str(port), "--seed-from", str(data), "--channels", str(config),
        "--rate-scale", "1", "--time-scale", "1", "--sqs-endpoint", sqs, "--log-level", "WARNING",
        "--requests-per-minute", str(CAP_PER_MINUTE), "--requests-per-day", str(CAP_PER_DAY),
    ]  # fmt: skip


def environment(
    pg: Postgres, home: Path, config: Path, data: Path, emulator: str, sqs: str, crons: tuple[str, str]
) -> dict[str, str]:
    """The daemon's and the CLI's environment: this machine's, minus any SP-API, sales-channel or AWS setting (no
    real credential reaches the emulator or moto), plus the bench's."""
    prefixes = ("SPAPI_", "SALES_CHANNEL_", "AWS_", "DAGSTER_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        pg.env(),
        DAGSTER_HOME=str(home),
        SALES_CHANNEL_CONFIG=str(config),
        SALES_CHANNEL_DATA=str(data),
        SPAPI_ENDPOINT=emulator,
        SPAPI_REQUESTS_PER_MINUTE=str(CAP_PER_MINUTE),
        SPAPI_REQUESTS_PER_DAY=str(CAP_PER_DAY),
        SALES_CHANNEL_SQS_ENDPOINT=sqs,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SALES_CHANNEL_PRICES_CRON=crons[0],
        SALES_CHANNEL_OFFERS_PULL_CRON=crons[1],
        SALES_CHANNEL_INVENTORY_CRON=NEVER,
        SALES_CHANNEL_FULL_CRON=NEVER,
    )
    return env


@dataclass
class Deployment:
    """The running deployment (`start`): the environment its processes share, the emulator's URL, the daemon and
    the Dagster instance."""

    env: dict[str, str]
    emulator: str
    daemon_log: Path
    daemon_pid: int
    instance: Any  # dg.DagsterInstance on the Postgres storage


def start(stack: contextlib.ExitStack, base: Path, config: Path, data: Path, crons: tuple[str, str]) -> Deployment:
    """Postgres, moto, the emulator and the daemon; each is stopped by `stack` (also on error or Ctrl-C)."""
    import dagster as dg

    pg = Postgres(base / "postgres", free_port())
    stack.callback(pg.stop)
    pg.start()
    os.environ.update(pg.env())  # this process reads the run records through deploy/dagster.yaml too
    logs = base / "logs"
    sqs_port, emulator_port = free_port(), free_port()
    sqs = f"http://127.0.0.1:{sqs_port}"
    moto_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    moto = spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(sqs_port)], moto_env, logs / "moto.log")
    stack.callback(stop_process, moto.pid)
    wait_for_port(sqs_port, timeout=60, proc=moto)
    emulator = f"http://127.0.0.1:{emulator_port}"
    env = environment(pg, instance_home(base / "dagster_home"), config, data, emulator, sqs, crons)
    proc = spawn(emulator_command(emulator_port, data, config, sqs), env, logs / "emulator.log")
    stack.callback(stop_process, proc.pid)
    wait_for_port(emulator_port, timeout=300, proc=proc)  # seeding 100,000 SKUs takes a while
    # the schema once, before the daemon would create it (dagster-notes §11)
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, cwd=REPO, check=True, capture_output=True)
    daemon_log = logs / "daemon.log"
    daemon = spawn([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, daemon_log)
    stack.callback(stop_process, daemon.pid)
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    stack.callback(instance.dispose)
    return Deployment(env, emulator, daemon_log, daemon.pid, instance)


def launch(deployment: Deployment, job: str, config: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> str:
    """Queue a run of `job` (the daemon launches it); its run id."""
    run_id = str(uuid.uuid4())
    args = [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", job, "--run-id", run_id]
    args += ["--config-json", json.dumps(config)] + (["--tags", json.dumps(tags)] if tags else [])
    done = subprocess.run(args, env=deployment.env, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dagster job launch {job} failed: {done.stderr[-3000:] or done.stdout[-3000:]}")
    return run_id


def wait_for_run(deployment: Deployment, run_id: str, timeout: float) -> float:
    """Wait for the run to succeed; its duration in seconds. Raises with the failure and the daemon's log tail."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = deployment.instance.get_run_record_by_id(run_id)
        status = record.dagster_run.status if record else None
        if status == dg.DagsterRunStatus.SUCCESS:
            return (record.end_time or 0) - (record.start_time or 0)
        if status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            failures = deployment.instance.all_logs(
                run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
            )
            messages = "\n".join(e.message for e in failures[-3:])
            raise RuntimeError(f"run {run_id} ({record.dagster_run.job_name}) {status.value}:\n{messages}")
        time.sleep(2)
    tail = deployment.daemon_log.read_text()[-3000:] if deployment.daemon_log.exists() else ""
    raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f} s; daemon log tail:\n{tail}")


def in_flight(deployment: Deployment, since: datetime) -> int:
    import dagster as dg

    statuses = [dg.DagsterRunStatus(s) for s in IN_FLIGHT]
    return len(deployment.instance.get_run_records(dg.RunsFilter(statuses=statuses, created_after=since)))


def drain(deployment: Deployment, since: datetime, bound_s: float) -> bool:
    """Wait until no run created since `since` has been queued or running for QUIET_SECONDS (the sensor's last
    notifications acted on), at most `bound_s`; False when the bound ran out first."""
    deadline = time.monotonic() + bound_s
    quiet_since = None
    while time.monotonic() < deadline:
        if in_flight(deployment, since):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            return True
        time.sleep(3)
    return False


def run_rows(deployment: Deployment, since: datetime) -> list[dict[str, Any]]:
    """The runs created since `since`: job, trigger, status, queued and run seconds, and the client's SP-API calls
    and 429s (its counters are per run: the in-process executor shares one resource, so the last figure holds)."""
    import dagster as dg

    rows = []
    for record in deployment.instance.get_run_records(dg.RunsFilter(created_after=since)):
        run = record.dagster_run
        calls = throttled = 0
        for event in deployment.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            metadata = event.asset_materialization.metadata if event.asset_materialization else {}
            calls = max(calls, int(getattr(metadata.get("spapi/total/calls"), "value", 0) or 0))
            throttled = max(throttled, int(getattr(metadata.get("spapi/total/throttled"), "value", 0) or 0))
        started, ended = record.start_time, record.end_time
        rows.append(
            {
                "job": run.job_name,
                "trigger": run.tags.get("trigger", "-"),
                "status": run.status.value,
                "queued_s": started - record.create_timestamp.timestamp() if started else None,
                "run_s": ended - started if started and ended else None,
                "calls": calls,
                "throttled": throttled,
            }
        )
    return rows


# -- the emulator's control API ---------------------------------------------------------------------------------------
def clock(http: httpx.Client) -> float:
    return float(_ok(http.get("/_emulator/clock"))["epoch"])


def market(http: httpx.Client, since: float) -> dict[str, Any]:
    iso = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _ok(http.get("/_emulator/market", params={"since": iso}))


def set_market(http: httpx.Client, **settings: float) -> dict[str, Any]:
    return _ok(http.post("/_emulator/market", json=settings))


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path}: {response.status_code} {response.text[:500]}")
    return response.json()


# -- main -------------------------------------------------------------------------------------------------------------
def _summary(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["  job                trigger        runs  failed  queued p50 s  run p50 s  run max s  calls  429s"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["job"], row["trigger"]), []).append(row)
    for (job, trigger), group in sorted(groups.items()):
        queued = [r["queued_s"] for r in group if r["queued_s"] is not None]
        spans = [r["run_s"] for r in group if r["run_s"] is not None]
        lines.append(
            f"  {job:18} {trigger:13} {len(group):5} {sum(r['status'] == 'FAILURE' for r in group):7} "
            f"{_fmt(percentile(queued, 50), 1):>13} {_fmt(percentile(spans, 50), 1):>10} "
            f"{_fmt(max(spans, default=None), 1):>10} {sum(r['calls'] for r in group):6} "
            f"{sum(r['throttled'] for r in group):5}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--moves-per-minute", type=float, default=20.0)
    parser.add_argument("--notified-share", type=float, default=0.5)
    parser.add_argument("--prices-cron", default="*/15 * * * *", help="the prices schedule")
    parser.add_argument("--pull-cron", default="*/5 * * * *", help="the offers pull schedule (the budgeted pull)")
    parser.add_argument("--drain-minutes", type=float, default=5.0, help="at most this long for in-flight runs")
    parser.add_argument("--workdir", help="keep everything here (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything on `kill` as on Ctrl-C

    with contextlib.ExitStack() as stack:
        if args.workdir:
            base = Path(args.workdir).resolve()
            if base.exists() and any(base.iterdir()):
                parser.error(f"--workdir {base} is not empty (a fresh Postgres, warehouse and emulator each run)")
            base.mkdir(parents=True, exist_ok=True)
        else:
            base = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
            stack.callback(shutil.rmtree, base, ignore_errors=True)
        base.chmod(0o755)  # under root, Postgres runs as the `postgres` user and must reach its data directory
        result = run(stack, base, args)
    print(result.line())


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def run(stack: contextlib.ExitStack, base: Path, args: argparse.Namespace) -> Freshness:
    from seller.config import load_channels

    observed_at = datetime.now(UTC).replace(microsecond=0)
    config, data = write_seller(base, args.skus, observed_at)
    channel = load_channels(config)[CHANNEL]
    asin_of_sku, offers = read_seller(data, channel)
    print(
        f"freshness: {args.skus:,} SKUs on {channel.name} ({channel.seller_id}), {args.minutes:g} min at "
        f"{args.moves_per_minute:g} moves/min, notified share {args.notified_share:g}; emulator at Amazon's rates "
        f"(rate_scale 1, time_scale 1), caps {CAP_PER_MINUTE}/min and {CAP_PER_DAY:,}/day; prices schedule "
        f"'{args.prices_cron}', offers pull '{args.pull_cron}'; under {base}",
        flush=True,
    )
    deployment = start(stack, base, config, data, (args.prices_cron, args.pull_cron))
    http = stack.enter_context(httpx.Client(base_url=deployment.emulator, timeout=60))

    # Prime before the subscriptions exist (the docstring says why), then enable the channel.
    os.environ["SALES_CHANNEL_CONFIG"] = str(config)  # channel_run_tags reads the partitions from it
    from pipelines.jobs import channel_run_tags

    tags = {"dagster/partition": CHANNEL, **channel_run_tags(CHANNEL)}
    prime_s = wait_for_run(deployment, launch(deployment, "channel_pipeline_job", PRIME_CONFIG, tags), 3600)
    enable = {"ops": {"enable_channel_op": {"config": {"channel": CHANNEL}}}}
    enable_s = wait_for_run(deployment, launch(deployment, "enable_channel", enable), 600)
    print(
        f"prime: channel_pipeline_job {prime_s:.0f} s (offers and FBA stock from the files), "
        f"enable_channel {enable_s:.0f} s",
        flush=True,
    )

    # The window.
    started = clock(http)
    started_wall = datetime.now(UTC) - timedelta(seconds=1)
    before = market(http, started + 86_400)  # the counters only
    set_market(http, movesPerMinute=args.moves_per_minute, notifiedShare=args.notified_share)
    end = time.monotonic() + args.minutes * 60
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(60.0, left))
        moved = len(market(http, started)["moves"])
        print(
            f"  {(time.time() - started) / 60:4.1f} min: {moved} moves, "
            f"{in_flight(deployment, started_wall)} runs queued or running",
            flush=True,
        )
    set_market(http, movesPerMinute=0)
    stopped = clock(http)
    window = market(http, stopped + 86_400)
    drained = drain(deployment, started_wall, args.drain_minutes * 60)
    ended = clock(http)
    after = market(http, started)
    rows = run_rows(deployment, started_wall)
    stop_process(deployment.daemon_pid)  # the DuckDB file is ours to read once no run can write it

    moves = parse_moves(after["moves"], channel.marketplace_id)
    newest, pull = read_observations(data, sorted({m.asin for m in moves}), started, ended)
    baseline = observed_at.timestamp()  # the file's rows, behind every price until something newer is observed
    newest = {asin: max(newest.get(asin, baseline), baseline) for asin in offers}
    requests, _ = seller_counts(before, window, channel.seller_id)
    _, throttled = seller_counts(before, after, channel.seller_id)
    result = measure(
        moves,
        after["ourPrices"],
        seller_id=channel.seller_id,
        marketplace_id=channel.marketplace_id,
        asin_of_sku=asin_of_sku,
        offers=offers,
        newest_observation=newest,
        ended_at=ended,
        requests=sum(requests.values()),
        throttled=throttled,
        minutes=(stopped - started) / 60,
    )
    _report(result, rows, requests, before, after, channel.seller_id, pull, drained, (ended - started) / 3600)
    return result


def _report(
    result: Freshness,
    rows: list[dict[str, Any]],
    requests: dict[str, int],
    before: dict[str, Any],
    after: dict[str, Any],
    seller_id: str,
    pull: dict[str, int] | None,
    drained: bool,
    hours: float,
) -> None:
    print(f"runs from the window's start to the end{'' if drained else ' (the drain bound ran out: runs left)'}:")
    print("\n".join(_summary(rows)))
    notified = [o for o in result.outcomes if o.move.notified]
    silent = [o for o in result.outcomes if not o.move.notified]
    for name, group in (("notified", notified), ("silent", silent)):
        reactions = [o.reaction_s for o in group if o.reaction_s is not None]
        print(
            f"{name} moves: {len(group)}, no change needed {sum(not o.needs_change for o in group)}, repriced "
            f"{len(reactions)}; reaction p50 {_fmt(percentile(reactions, 50), 0)} s, p95 "
            f"{_fmt(percentile(reactions, 95), 0)} s, max {_fmt(max(reactions, default=None), 0)} s"
        )
    ages = result.silent_ages_min
    print(
        f"silent ASINs: {len(ages)}; newest observation behind our price at the end: p50 "
        f"{_fmt(percentile(ages, 50), 1)} min, max {_fmt(result.silent_max_age_min, 1)} min"
    )
    if pull is None:
        print("pull: the channel has no offer_snapshots table (offers as observations not in this build)")
    else:
        print(
            f"pull: {pull['asins']:,} ASINs refreshed in {hours * 60:.1f} min ({pull['asins'] / hours:,.0f} per hour), "
            f"{pull['failed']} failed snapshots"
        )
    ops = ", ".join(f"{op} {n}" for op, n in sorted(requests.items())) or "none"
    print(f"requests in the window: {sum(requests.values())} ({result.requests_per_min:.1f}/min; {ops})")
    by_kind = {
        kind: _throttled(after, seller_id, kind) - _throttled(before, seller_id, kind) for kind in ("bucket", "cap")
    }
    print(
        f"throttled (429 answered by the emulator): bucket {by_kind['bucket']}, cap {by_kind['cap']}; the client "
        f"counted {sum(r['throttled'] for r in rows)} in its runs"
    )


if __name__ == "__main__":
    main()
