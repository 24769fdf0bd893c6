"""Sync benchmark: how long N changed SKUs of one channel take to reach Amazon, by feeds and by per-SKU patches.

Three parts, printed in order:

1. **Model** (computed, not measured): a sequential schedule of the calls each path needs under Amazon's documented
   usage plans (`resources/spapi/operations.py`): JSON_LISTINGS_FEED documents of ≤ 25,000 messages, at most 5
   submissions per 300 s, createFeedDocument/createFeed/getFeed/getFeedDocument token buckets; patchListingsItem at
   5/s burst 5; and the same patches under the module's own caps (30 requests/minute and 36,000/day per seller,
   sliding windows). Token buckets start full; calls take no time; Amazon's feed processing time is not a documented
   limit and is not in the feed figure.
2. **Confirmation** (measured): the module's client (`resources.spapi`, its shared throttle) and push (`sync.push`,
   its feed pacing) against the local emulator with `rate_scale` X: every refill rate × X, bursts unchanged, the
   feed-type window 300/X s, and the client's minute/day cap windows shortened by the same X, so a run that takes
   T seconds at Amazon's limits takes T/X here. Measured seconds × X are compared with the model (ratio 1.00 = the
   module sends exactly at the limit; the client deliberately runs 3 % under each bucket's rate).
3. **Full run** (measured): `--skus` synthetic SKUs on channel us, an emulator seeded from the same files but with
   every listed price doubled (above each SKU's ceiling, so every offer the pipeline sends changes Amazon's state),
   then one Dagster run (`dg.materialize`, `listings_submission` and everything upstream, the two Amazon pulls
   offline) in a child process against it, by the feed path. The emulator keeps Amazon's documented rates
   (rate_scale 1) with its clock running 20× fast (time_scale 20: feed steps, the 5-per-5-minute window, token
   expiry); the push's window and the module's minute cap are scaled to match. The wall time is the child's.

Ends with one line `sync: feed_min=F patch_min=P cap_min=C run_s=S skus=N` (F/P/C modelled minutes at Amazon's
limits for feeds, per-SKU patches, and patches under the 30/minute cap; S the measured wall seconds of the run).

    uv run python -m bench.sync [--skus 100000]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from feeds.listings_json import MAX_MESSAGES
from resources.spapi.operations import FEED_SUBMISSION_LIMITS, OPERATIONS

AS_OF = datetime.now(UTC).replace(microsecond=0)
SELLER = "A3DEMOSELLER01"

# Amazon's documented limits beyond the per-operation usage plans (operations.py holds both).
_JSON_FEED = FEED_SUBMISSION_LIMITS["JSON_LISTINGS_FEED"]
FEEDS_PER_WINDOW, FEED_WINDOW_S = _JSON_FEED.submissions, _JSON_FEED.seconds  # 5 submissions per 5 minutes
CAP_PER_MINUTE, CAP_PER_DAY = 30, 36_000  # the module's own caps per seller (SpApiResource defaults)

# Confirmation sizes and scales: each phase takes ~10 s here and 3-10 minutes at Amazon's limits.
PATCHES, PATCH_SCALE = 1_000, 20.0
CAPPED, CAP_SCALE = 300, 60.0
FEEDS, FEED_SCALE, FEED_MESSAGES = 11, 60.0, 50
RUN_TIME_SCALE = 20.0


# -- the model --------------------------------------------------------------------------------------------------------
@dataclass
class _Bucket:
    rate: float
    burst: int
    tokens: float | None = None  # full until the first call
    stamp: float = 0.0

    def ready(self, t: float) -> float:
        if self.tokens is None:
            self.tokens, self.stamp = float(self.burst), t
        tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate)
        return t if tokens >= 1 else t + (1 - tokens) / self.rate

    def take(self, t: float) -> None:
        self.tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate) - 1
        self.stamp = t


class _Window:
    """At most `cap` calls in any `period` seconds (a sliding window)."""

    def __init__(self, cap: int, period: float) -> None:
        self.period = period
        self.sent: collections.deque[float] = collections.deque(maxlen=cap)

    def ready(self, t: float) -> float:
        return max(t, self.sent[0] + self.period) if len(self.sent) == self.sent.maxlen else t

    def take(self, t: float) -> None:
        self.sent.append(t)


def schedule(calls: Iterable[str], caps: bool = False) -> float:
    """Send time (s from the first call) of the last of `calls` made one after another as early as Amazon's limits
    (and, with `caps`, the module's per-seller caps) allow. Calls take no time; buckets start full."""
    buckets = {name: _Bucket(op.rate, op.burst) for name, op in OPERATIONS.items()}
    per_op = {"createFeed": [_Window(FEEDS_PER_WINDOW, FEED_WINDOW_S)]}  # JSON_LISTINGS_FEED's own limit
    shared = [_Window(CAP_PER_MINUTE, 60.0), _Window(CAP_PER_DAY, 86_400.0)] if caps else []
    t = 0.0
    for name in calls:
        limits = [buckets[name], *per_op.get(name, []), *shared]
        t = max(limit.ready(t) for limit in limits)
        for limit in limits:
            limit.take(t)
    return t


def feed_calls(documents: int) -> Iterator[str]:
    """Submit every document (createFeedDocument, upload — not throttled —, createFeed), then read each result."""
    for _ in range(documents):
        yield from ("createFeedDocument", "createFeed")
    for _ in range(documents):
        yield from ("getFeed", "getFeedDocument")


def model(skus: int) -> dict[str, float]:
    documents = math.ceil(skus / MAX_MESSAGES)
    return {
        "documents": documents,
        "feed_s": schedule(feed_calls(documents)),
        "patch_s": schedule(["patchListingsItem"] * skus),
        "cap_s": schedule(["patchListingsItem"] * skus, caps=True),
    }


# -- confirmation against the emulator ------------------------------------------------------------------------------
def _client(server: Any, state: Path, scale: float, caps: bool) -> Any:
    from pipelines.resources import EMULATOR_DEFAULTS
    from resources.spapi import RetryPolicy, SpApiClient, Throttle

    throttle = Throttle(
        state / "throttle.sqlite3",
        requests_per_minute=CAP_PER_MINUTE if caps else 0,
        requests_per_day=CAP_PER_DAY if caps else 0,
        minute_seconds=60.0 / scale,
        day_seconds=86_400.0 / scale,
        feed_window_seconds=FEED_WINDOW_S / scale,
    )
    client = SpApiClient(
        seller_id=SELLER,
        **EMULATOR_DEFAULTS,
        endpoint=server.url,
        token_url=server.token_url,
        state_dir=state,
        throttle=throttle,
        retry=RetryPolicy(max_attempts=5, max_total_seconds=60, backoff_base=0.05, backoff_cap=0.5),
    )
    client._provider_for(None).token()  # LWA outside the timing
    return client


def _offer_rows(server: Any, count: int) -> list[dict[str, Any]]:
    """Offer rows (offer_updates shape) for the first `count` listings of the emulator, priced at their floor."""
    listings = sorted(server.state.store.listings.values(), key=lambda listing: listing.sku)
    rows = []
    for listing in listings:
        if listing.min_price is None or listing.max_price is None or listing.product_type != "PRODUCT":
            continue
        rows.append(
            {
                "sku": listing.sku,
                "asin": listing.asin,
                "fulfillment": listing.fulfillment,
                "price_minor": int(listing.min_price * 100),
                "min_minor": int(listing.min_price * 100),
                "max_minor": int(listing.max_price * 100),
                "quantity": listing.quantity if listing.fulfillment == "FBM" else None,
                "handling_time_days": listing.handling_time if listing.fulfillment == "FBM" else None,
            }
        )
        if len(rows) == count:
            break
    assert len(rows) == count, f"the emulator holds only {len(rows)} usable listings"
    return rows


def _emulator(scale: float, **options: Any) -> Any:
    from emulator.server import EmulatorOptions, EmulatorServer
    from seller.config import load_channels

    us = {"us": load_channels()["us"]}
    return EmulatorServer(EmulatorOptions(synthetic=2_000, channels=us, rate_scale=scale, **options))


def confirm_patches(tmp: Path, count: int, scale: float, caps: bool) -> dict[str, float]:
    """`count` patchListingsItem calls, one after another, through the module's client and throttle."""
    from seller.config import load_channels
    from sync.push import patches_for

    channel = load_channels()["us"]
    with _emulator(scale) as server:
        client = _client(server, tmp / f"patch-{caps}", scale, caps)
        rows = _offer_rows(server, count)
        started = time.perf_counter()
        for row in rows:
            answer = client.patch_listings_item(row["sku"], [channel.marketplace_id], patches=patches_for(row, channel))
            assert answer.get("status") == "ACCEPTED", answer
        elapsed = time.perf_counter() - started
        counters = client.counters.by_operation["patchListingsItem"]
        client.close()
    modelled = schedule(["patchListingsItem"] * count, caps=caps)
    return {"real_s": elapsed, "model_s": modelled, "scale": scale, "throttled": counters.throttled}


def confirm_feeds(tmp: Path, count: int, scale: float, messages: int) -> dict[str, float]:
    """`count` JSON_LISTINGS_FEED documents of `messages` SKUs each, sent by the module's push (the client's
    5-per-window submissions) and waited for; measures first to last createFeed."""
    import duckdb
    import pyarrow as pa

    from feeds.store import LocalFeedStore
    from pricing.money import install_money_macros
    from resources.spapi import FeedPolling
    from seller.config import load_channels
    from sync.push import Push, PushSettings

    channel = load_channels()["us"]
    with _emulator(scale, feed_step_seconds=0.05) as server:
        client = _client(server, tmp / "feeds", scale, caps=False)
        con = duckdb.connect()
        install_money_macros(con)
        con.register("offer_rows", pa.Table.from_pylist(_offer_rows(server, count * messages)))
        con.execute("CREATE TABLE updates AS SELECT * FROM offer_rows")
        settings = PushSettings(
            feed_threshold=0,
            max_messages=messages,
            readback_sample=0,
            polling=FeedPolling(initial=0.05, maximum=0.2),
        )
        # One in-memory database: the push's every "connection" is this one, left open.
        summary = Push(
            lambda: contextlib.nullcontext(con),
            client,
            channel,
            run_id="bench-feeds",
            settings=settings,
            feeds=LocalFeedStore(tmp / "feeds"),
        ).run(lambda _: "updates")
        first, last = con.execute("SELECT min(submitted_at), max(submitted_at) FROM submissions").fetchall()[0]
        con.close()
        throttled = client.counters.by_operation["createFeed"].throttled
        client.close()
    assert summary.feeds_submitted == count and summary.statuses == {"accepted": count * messages}, summary
    modelled = schedule(["createFeedDocument", "createFeed"] * count)
    return {"real_s": (last - first).total_seconds(), "model_s": modelled, "scale": scale, "throttled": throttled}


# -- the full run -----------------------------------------------------------------------------------------------------
def _run(config: dict[str, Any]) -> None:
    """Child process: one Dagster run of listings_submission and everything upstream, against the emulator."""
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from pipelines.definitions import ALL_ASSETS
    from pipelines.resources import EMULATOR_DEFAULTS
    from resources.spapi_resource import SpApiResource
    from resources.warehouse import Warehouse

    scale = config["time_scale"]
    spapi = SpApiResource(
        **EMULATOR_DEFAULTS,
        endpoint=config["endpoint"],
        token_url=config["token_url"],
        state_dir=str(Path(config["data"]) / "spapi"),
        requests_per_minute=round(CAP_PER_MINUTE * scale),  # 30 per emulated minute
        feed_window_seconds=FEED_WINDOW_S / scale,
    )
    offline = {"config": {"offline": True}}
    started = time.perf_counter()
    result = dg.materialize(
        ALL_ASSETS,
        selection=dg.AssetSelection.assets("listings_submission").upstream(),
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=config["data"]), "spapi": spapi, "s3": S3Resource()},
        run_config={
            "ops": {
                "fba_inventory": offline,
                "competitor_prices": offline,
                "offer_observations": offline,
                "buybox_prices": {"config": {"as_of": config["as_of"]}},
                "listings_submission": {
                    "config": {
                        "poll_initial_seconds": 5.0 / scale,
                        "poll_max_wait_seconds": 1800.0 / scale,
                    }
                },
            },
            "loggers": {"console": {"config": {"log_level": "ERROR"}}},
        },
    )
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("listings_submission")[0].metadata.items()}
    print(json.dumps({"materialize_s": time.perf_counter() - started, "meta": meta}))


def _amazon_copy(data: Path, out: Path) -> None:
    """The seller's files with every master price doubled: what the emulator (Amazon) starts from."""
    out.mkdir()
    for path in data.glob("*.csv"):
        if path.stem != "master_inventory":
            shutil.copy(path, out / path.name)
            continue
        with path.open(newline="") as src, (out / path.name).open("w", newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, fieldnames=reader.fieldnames or [])
            writer.writeheader()
            for row in reader:
                row["price"] = str(Decimal(row["price"]) * 2)
                writer.writerow(row)


def full_run(tmp: Path, skus: int) -> dict[str, Any]:
    from emulator.server import EmulatorOptions, EmulatorServer
    from seller.config import load_channels
    from seller.synthetic import generate

    us = {"us": load_channels()["us"]}
    data, amazon = tmp / "seller", tmp / "amazon"
    generate(data, skus, us, now=AS_OF)
    _amazon_copy(data, amazon)
    options = EmulatorOptions(seed_from=str(amazon), channels=us, rate_scale=1.0, time_scale=RUN_TIME_SCALE)
    with EmulatorServer(options) as server:
        before = {key: listing.price for key, listing in server.state.store.listings.items()}
        config = {
            "endpoint": server.url,
            "token_url": server.token_url,
            "data": str(data),
            "as_of": AS_OF.isoformat(),
            "time_scale": RUN_TIME_SCALE,
        }
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "bench.sync", "--role", "run", "--config", json.dumps(config)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        elapsed = time.perf_counter() - started
        if child.returncode != 0:
            sys.stderr.write(child.stderr[-5000:])
            raise SystemExit("the full run failed")
        changed = sum(1 for key, listing in server.state.store.listings.items() if listing.price != before[key])
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return {"run_s": elapsed, "listings": len(before), "changed_on_amazon": changed, **report}


# -- main -------------------------------------------------------------------------------------------------------------
def _ratio_line(what: str, m: dict[str, float]) -> str:
    scale = m["scale"]
    ratio = m["real_s"] * scale / m["model_s"]
    return (
        f"  {what}: {m['real_s']:.2f} s at rate_scale {scale:g} = {m['real_s'] * scale / 60:.2f} min at Amazon's "
        f"limits; model {m['model_s'] / 60:.2f} min; measured/model {ratio:.3f}; {m['throttled']:.0f} throttled (429)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--role", choices=["run"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "run":
        return _run(json.loads(args.config))

    n = args.skus
    m = model(n)
    patch, feed_doc = OPERATIONS["patchListingsItem"], OPERATIONS["createFeed"]
    print(f"model: {n:,} changed SKUs on one channel; calls one after another as early as the limits allow")
    print(
        f"  feeds: {m['documents']} JSON_LISTINGS_FEED documents of <= {MAX_MESSAGES:,} messages; with "
        f"{FEEDS_PER_WINDOW} submissions per {FEED_WINDOW_S:.0f} s, createFeed {feed_doc.rate}/s "
        f"burst {feed_doc.burst} and createFeedDocument/getFeed/getFeedDocument in their bursts, the last call is "
        f"at {m['feed_s']:.0f} s"
    )
    print(
        f"    (the window first binds above {FEEDS_PER_WINDOW * MAX_MESSAGES:,} SKUs; Amazon's processing time is "
        "undocumented and not included)"
    )
    print(
        f"  patches: patchListingsItem {patch.rate:g}/s burst {patch.burst} -> {m['patch_s'] / 60:.2f} min "
        f"({m['patch_s'] / 3600:.1f} h)"
    )
    print(
        f"  patches under the module caps ({CAP_PER_MINUTE}/min, {CAP_PER_DAY:,}/day per seller, sliding windows) -> "
        f"{m['cap_s'] / 60:.2f} min ({m['cap_s'] / 86_400:.2f} days)"
    )

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as name:
        tmp = Path(name)
        print(
            "confirmation against the emulator (the module's client, throttle and push; emulator rates and the "
            "client's cap windows x rate_scale; the client runs its buckets at 97 %, so ~1.03 is expected for patches;"
            " the day cap is modelled only):"
        )
        print(_ratio_line(f"{PATCHES:,} patches", confirm_patches(tmp, PATCHES, PATCH_SCALE, caps=False)))
        print(_ratio_line(f"{CAPPED} patches under the caps", confirm_patches(tmp, CAPPED, CAP_SCALE, caps=True)))
        feeds = confirm_feeds(tmp, FEEDS, FEED_SCALE, FEED_MESSAGES)
        print(_ratio_line(f"{FEEDS} feed submissions (first to last createFeed)", feeds))
        run = full_run(tmp, n)
    meta = run["meta"]
    statuses = {k.removeprefix("status_"): v for k, v in meta.items() if k.startswith("status_")}
    print(
        f"full run: {n:,} SKUs, {meta['changed']:,} mapped and changed, path {meta['path']}, "
        f"{meta['feeds_submitted']} feeds, statuses {statuses}, {meta['spapi/total/calls']} SP-API calls, "
        f"{meta['spapi/total/throttled']} throttled; Amazon (emulator) shows a new price on "
        f"{run['changed_on_amazon']:,} of {run['listings']:,} listings"
    )
    print(
        f"  emulator rate_scale 1, time_scale {RUN_TIME_SCALE:g}; wall {run['run_s']:.1f} s for the child process "
        f"(materialize {run['materialize_s']:.1f} s)"
    )
    print(
        f"sync: feed_min={m['feed_s'] / 60:.2f} patch_min={m['patch_s'] / 60:.2f} cap_min={m['cap_s'] / 60:.2f} "
        f"run_s={run['run_s']:.1f} skus={n}"
    )


if __name__ == "__main__":
    main()
