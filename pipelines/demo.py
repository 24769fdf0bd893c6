"""`make demo`: the whole loop for a synthetic seller against the local SP-API emulator and a moto SQS server, offline.

1. a synthetic seller (5,000 SKUs, channels us/uk/de) is written to `.demo/data`;
2. every channel runs the full pipeline: pull FBA stock and offers, reconcile, price, write the feeds, push what
   changed — thousands of changes, so by JSON_LISTINGS_FEED;
3. each channel is enabled (`enable_channel`: connection check, SQS queue, destination, subscriptions; the schedules
   of `make ui` then run it) — after the bulk reprice,
   whose thousands of ANY_OFFER_CHANGED notifications a moto queue would take minutes to serve (~25 messages/s);
4. a small follow-up change to the master (a few FBM quantities) goes out by patchListingsItem;
5. a burst of orders on Amazon arrives as ORDER_CHANGE notifications, is ingested by the SQS sensor, reserves FBM stock
   and triggers the inventory runs it requests;
6. the seller records a shipment, which is confirmed with confirmShipment;
7. each channel's status is taken (`channel_status_job`: the channel_status asset and the freshness checks);
and a summary per channel is printed: priced SKUs and prices up/down, the push, reservations, shipments, the
feed documents with their paths, and each channel's one-line status with its key figures. Everything stays under
`.demo/` (including a persistent DAGSTER_HOME, so `make ui` shows the runs, and the emulator's state in
`.demo/data/emulator`, which `make ui`'s runs reuse).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
FOLLOW_UP_SKUS = 5
ORDERS_PER_CHANNEL = 20

_INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
"""
# Run logs stay in the instance (the UI shows them); the console gets warnings and errors only.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _prepare_environment() -> Path:
    data = DEMO / "data"
    shutil.rmtree(DEMO, ignore_errors=True)
    home = DEMO / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["SALES_CHANNEL_DATA"] = str(data)
    os.environ.setdefault("SALES_CHANNEL_CONFIG", str(ROOT / "channels.yaml"))
    os.environ["SALES_CHANNEL_SPAPI"] = "emulator"
    os.environ["SALES_CHANNEL_SQS_WAIT_SECONDS"] = "1"
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=5000)
    args = parser.parse_args(argv)
    data = _prepare_environment()
    started = time.monotonic()

    import logging

    from moto.server import ThreadedMotoServer

    from emulator.server import EmulatorOptions, EmulatorServer
    from seller.config import load_channels
    from seller.synthetic import generate

    channels = load_channels()
    counts = generate(data, args.skus, channels)
    print(f"synthetic seller: {counts['master_inventory']} SKUs, {len(channels)} channels -> {data}")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    sqs_url = f"http://127.0.0.1:{moto._server.server_port}"  # noqa: SLF001 - moto exposes the bound port only here
    options = EmulatorOptions(
        seed_from=str(data),
        channels=channels,
        state_dir=str(data / "emulator"),
        sqs_endpoint=sqs_url,
        rate_scale=1000,  # Amazon's documented rates x 1000: the same rules, seconds instead of hours
        feed_step_seconds=0.2,
    )
    try:
        with EmulatorServer(options) as emulator:
            os.environ["SPAPI_ENDPOINT"] = emulator.url
            os.environ["SALES_CHANNEL_SQS_ENDPOINT"] = sqs_url
            print(f"SP-API emulator {emulator.url}, SQS (moto) {sqs_url}")
            print(
                f"rates: the emulator runs at {options.rate_scale:,.0f}x Amazon's documented rates and the module's "
                "30/min and 36,000/day caps are off, so this demo takes minutes; at Amazon's real limits the offers "
                "pull alone covers about 7,000 ASINs an hour (README: 'What to expect at Amazon's real limits')"
            )
            failed = _loop(data, emulator)
    finally:
        moto.stop()
    print(f"\nfinished in {time.monotonic() - started:.0f}s")
    print("Open the Dagster UI on these runs:  make ui   (then http://127.0.0.1:3000)")
    return 1 if failed else 0


def _loop(data: Path, emulator: Any) -> list[str]:
    # Imported once the environment names the emulator and SQS: the code location reads it when it loads.
    import dagster as dg
    import httpx

    from pipelines.definitions import defs
    from pipelines.partitions import CHANNELS
    from pipelines.sensors import sqs_notifications_sensor
    from resources.warehouse import Warehouse

    warehouse = Warehouse(data_dir=str(data))
    stats: dict[str, Counter] = {name: Counter() for name in CHANNELS}
    # Per channel and feed asset, the documents its last materialization wrote: (path, rows or messages).
    documents: dict[str, dict[str, list[tuple[str, int]]]] = {name: {} for name in CHANNELS}
    failed: list[str] = []
    statuses: dict[str, dict[str, Any]] = {}  # channel -> channel_status's metadata values

    with dg.DagsterInstance.get() as instance:

        def run(job_name: str, channel: str, step: str) -> None:
            started = time.monotonic()
            result = defs.resolve_job_def(job_name).execute_in_process(
                partition_key=channel, instance=instance, raise_on_error=False, run_config=_QUIET
            )
            if not result.success:
                failed.append(f"{channel}: {step}")
                print(f"  {channel}: {step} FAILED (see the run in the UI)")
                return
            for event in result.get_asset_materialization_events():
                key, meta = event.asset_key.to_user_string(), event.materialization.metadata
                if key == "listings_submission":
                    stats[channel]["read_back"] += meta["read_back"].value
                    stats[channel][f"path_{meta['path'].value}"] += 1
                elif key == "listings_feed":
                    folder = warehouse.feeds_dir(channel) / meta["feed_type"].value
                    counts = meta["messages_per_document"].value.items()
                    documents[channel][key] = [(str(folder / name), count) for name, count in counts]
                elif key in ("price_quantity_feed", "inventory_loader_feed"):
                    documents[channel][key] = [(meta["path"].value, meta["dagster/row_count"].value)]
            print(f"  {channel}: {step} ({time.monotonic() - started:.1f}s)")

        print("\n2. full sync per channel (pull, price, push by feed)")
        for name in CHANNELS:
            run("channel_pipeline_job", name, "full sync")
        print("3. enable each channel: connection check, queue, destination, subscriptions; schedules may run it")
        for name in CHANNELS:
            enabled = defs.resolve_job_def("enable_channel").execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config={**_QUIET, "ops": {"enable_channel_op": {"config": {"channel": name}}}},
            )
            if not enabled.success:
                failed.append(f"{name}: enable")
            print(f"  {name}: enable_channel {'ok' if enabled.success else 'FAILED (see the run in the UI)'}")
            run("notification_setup_job", name, "notification subscriptions recorded")
        print(f"4. follow-up: {FOLLOW_UP_SKUS} FBM quantities change in the master -> patches")
        _change_master(data, FOLLOW_UP_SKUS)
        for name in CHANNELS:
            run("channel_pipeline_job", name, "follow-up sync")
        print(f"5. {ORDERS_PER_CHANNEL} orders per channel arrive as ORDER_CHANGE notifications")
        orders = {name: _place_orders(httpx, emulator.url, warehouse, channel) for name, channel in CHANNELS.items()}
        emulator.state.delivery.flush(timeout=120)  # the emulator delivers to SQS in the background
        cursor, requested = None, {}
        while True:  # one sensor tick drains for at most 40 s; tick until the queue is empty
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": warehouse})
            result = sqs_notifications_sensor(context)
            for request in result.run_requests or []:
                requested[(request.job_name, request.partition_key)] = request
            if not result.run_requests and result.cursor == cursor:
                break
            cursor = result.cursor
        for job, channel in sorted(requested):
            run(job, channel, f"{job} requested by the sensor")
        print("6. the seller ships one order per channel -> confirmShipment")
        _record_shipments(data, orders)
        for name in CHANNELS:
            run("channel_pipeline_job", name, "sync with shipments")
        print("7. channel status: channel_status and the freshness checks (every 5 minutes under make ui)")
        for name in CHANNELS:
            result = defs.resolve_job_def("channel_status_job").execute_in_process(
                partition_key=name, instance=instance, raise_on_error=False, run_config=_QUIET
            )
            if not result.success:
                failed.append(f"{name}: channel status")
                print(f"  {name}: channel status FAILED (see the run in the UI)")
                continue
            meta = result.asset_materializations_for_node("channel_status")[0].metadata
            statuses[name] = {key: value.value for key, value in meta.items()}
            checks = result.get_asset_check_evaluations()
            statuses[name]["checks"] = f"{sum(c.passed for c in checks)}/{len(checks)} freshness checks passed"
    _print_summary(warehouse, stats, documents)
    _print_statuses(statuses)
    return failed


def _change_master(data: Path, skus: int) -> None:
    import duckdb

    path = data / "master_inventory.csv"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (CASE WHEN sku IN (SELECT sku FROM read_csv('{data}/channel_mappings.csv') "
        f"WHERE fulfillment = 'FBM' ORDER BY sku LIMIT {skus}) THEN quantity + 7 ELSE quantity END AS quantity) "
        f"FROM read_csv('{path}', all_varchar = false) ORDER BY sku) TO '{path}.new' (FORMAT csv, HEADER true)"
    ).fetchall()
    con.close()
    os.replace(f"{path}.new", path)


def _place_orders(httpx: Any, url: str, warehouse: Any, channel: Any) -> list[str]:
    with warehouse.connect(channel.name) as con:
        skus = [
            row[0]
            for row in con.execute(
                "SELECT sku FROM reconciled_inventory WHERE publish_quantity AND quantity > 2 ORDER BY sku LIMIT $n",
                {"n": ORDERS_PER_CHANNEL},
            ).fetchall()
        ]
    orders = []
    for sku in skus:
        response = httpx.post(
            f"{url}/_emulator/orders",
            json={"sellerId": channel.seller_id, "marketplaceId": channel.marketplace_id, "items": [{"sku": sku}]},
        )
        response.raise_for_status()
        orders.append(response.json()["orderId"])
    return orders


def _record_shipments(data: Path, orders: dict[str, list[str]]) -> None:
    lines = ["channel,order_id,carrier_code,tracking_number,ship_date"]
    for channel, ids in orders.items():
        if ids:
            lines.append(f"{channel},{ids[0]},UPS,1Z999AA1012345678{len(lines)},2026-11-29T12:00:00+00:00")
    (data / "shipments.csv").write_text("\n".join(lines) + "\n")


def _print_summary(
    warehouse: Any, stats: dict[str, Counter], documents: dict[str, dict[str, list[tuple[str, int]]]]
) -> None:
    print()
    header = (
        f"{'channel':<8}{'SKUs':>6}{'mapped':>7}{'priced':>7}{'up':>6}{'down':>6}{'sent':>7}{'accepted':>9}"
        f"{'not_applied':>12}{'read-back':>10}{'reserved':>9}{'shipped':>8}  errors by code / paths"
    )
    print(header)
    print(f"{'':<21}(up/down: the Buy Box price against the master's base price, which buybox_prices records)")
    print(f"{'':<21}(sent, accepted and errors count every submission of the demo's runs)")
    for name, counter in stats.items():
        with warehouse.connect(name) as con:
            skus, mapped = con.execute(
                "SELECT (SELECT count(*) FROM master_inventory), (SELECT count(*) FROM reconciled_inventory)"
            ).fetchall()[0]
            priced, up, down = con.execute(
                "SELECT count(*), count(*) FILTER (price_minor > base_minor), "
                "count(*) FILTER (price_minor < base_minor) FROM buybox_prices"
            ).fetchall()[0]
            by_status = dict(
                con.execute(
                    "SELECT status, count(*) FROM sync_history WHERE operation = 'submit' GROUP BY ALL"
                ).fetchall()
            )
            errors = con.execute(
                "SELECT coalesce(code, status), count(*) FROM sync_history WHERE operation = 'submit' "
                "AND status IN ('error', 'category_restricted', 'warning') GROUP BY ALL ORDER BY 2 DESC"
            ).fetchall()
            reserved = con.execute("SELECT coalesce(sum(reserved_quantity), 0) FROM reservations").fetchall()[0][0]
            shipped = con.execute(
                "SELECT count(*) FROM sync_history WHERE operation = 'confirm_shipment' AND status = 'confirmed'"
            ).fetchall()[0][0]
        sent = sum(count for status, count in by_status.items() if status not in ("unchanged", "deferred", "pending"))
        paths = ", ".join(f"{key[5:]}×{value}" for key, value in sorted(counter.items()) if key.startswith("path_"))
        codes = ", ".join(f"{code} {count}" for code, count in errors) or "none"
        print(
            f"{name:<8}{skus:>6}{mapped:>7}{priced:>7}{up:>6}{down:>6}{sent:>7}{by_status.get('accepted', 0):>9}"
            f"{by_status.get('not_applied', 0):>12}{counter['read_back']:>10}{reserved:>9}{shipped:>8}  "
            f"{codes}; runs by path: {paths}"
        )
    print("\nfeed documents written by each channel's last run:")
    for name, feeds in documents.items():
        folder = warehouse.feeds_dir(name)
        reports = len(list((folder / "reports").glob("*.json")))
        print(f"  {name}: {os.path.relpath(folder, Path.cwd())}/  (and {reports} processing report(s) in reports/)")
        for path, count in sorted(item for written in feeds.values() for item in written):
            unit = "messages" if path.endswith(".json") else "rows"
            size = Path(path).stat().st_size / 1024
            print(f"    {os.path.relpath(path, folder):<54}{count:>7,} {unit:<9}{size:>7,.0f} KiB")


def _print_statuses(statuses: dict[str, dict[str, Any]]) -> None:
    """Each channel's channel_status: the one-line status, then the figures the UI shows beside it."""
    print("\nchannel status (the channel_status asset in the UI; the seller overview is in its metadata):")
    for name, meta in statuses.items():
        print(f"  {name}: {meta['status']}")
        print(f"      connection {meta['connection']}; {meta['checks']}")
        ago = {key: meta[key].rpartition("(")[2].rstrip(")") for key in meta if key.startswith("last_")}
        print(
            f"      last price push {ago['last_price_push']}, quantity push {ago['last_quantity_push']}, FBA pull "
            f"{ago['last_fba_pull']}, offers pull {ago['last_offers_pull']}, order poll {ago['last_order_poll']}"
        )
        print(
            f"      open feeds {meta['open_feeds']}, SKUs in error {meta['skus_in_error']}, offer data age p50/p95 "
            f"{meta['offer_age_p50_minutes']}/{meta['offer_age_p95_minutes']} min, notification coverage "
            f"{meta['notification_coverage']}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
