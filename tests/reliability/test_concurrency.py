"""Concurrency: the channel pipeline of three channels of one seller (us, uk, de) run at the same time in three
processes against ONE emulator, with Amazon's rate limits scaled ×5 (so getItemOffersBatch allows one request per
2 s per seller: the three runs must share it) and one SP-API `state_dir` (the client's shared token buckets).
Asserted: all three runs succeed (no DuckDB lock failure), zero 429s (the emulator's own count through the wiretap
and each run's `spapi/total/throttled`), and invariants 1, 2, 3 and 6 for every channel. Each run also reads the
seller's shared notification store (`reservations`, one open FBM order per channel, each reserving the seller's stock
on all three) at the same moment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.partitions import CHANNELS as PIPELINE_CHANNELS
from pipelines.resources import EMULATOR_DEFAULTS
from resources.spapi.operations import OPERATIONS
from resources.warehouse import Warehouse
from sync.notifications import Received, prepare_batch, store_batch
from tests.notifications.helpers import order_change
from tests.sync.helpers import MARKETPLACE, query

REPO = Path(__file__).resolve().parents[2]
CHANNELS = ("us", "uk", "de")
RATE_SCALE = 5.0
PURCHASED = "2026-11-29T09:00:00Z"  # a fixed date in the past, on Amazon's clock
EXTRA_MAPPINGS = (
    "uk,FBM-1,B000000002,FBM,,8.00,20.00,1.00,\n"
    "uk,FBM-FLOOR,B000000003,FBM,,20.00,35.00,0,\n"
    "uk,FBM-CEIL,B000000004,FBM,,8.00,11.00,0,\n"
    "de,FBA-1,B000000001,FBA,,14.00,28.00,,\n"
    "de,FBM-1,B000000002,FBM,,9.00,22.00,1.20,\n"
    "de,FBM-FLOOR,B000000003,FBM,,25.00,38.00,0,\n"
    "de,FBM-CEIL,B000000004,FBM,,9.00,12.00,0,\n"
)

# One channel's pipeline in its own process: waits for the go file (so the three start together), runs the same
# assets as the other scenarios, prints its outcome and the SP-API counters of its listings_submission.
CHILD = r"""
import json, os, sys, time
from pathlib import Path
import dagster as dg
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from assets.orders import reservations
from tests.sync.helpers import ALL_ASSETS

data, channel, ready, go = sys.argv[1:5]
spapi = SpApiResource(**json.loads(os.environ["RELIABILITY_SPAPI"]))
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
config = {"poll_initial_seconds": 0.05}
result = dg.materialize(
    [reservations, *ALL_ASSETS],
    partition_key=channel,
    resources={"warehouse": Warehouse(data_dir=data), "spapi": spapi},
    run_config={"ops": {"listings_submission": {"config": config}}},
    raise_on_error=False,
)
meta = {}
for event in result.all_events:
    if event.is_step_materialization and event.step_key == "listings_submission":
        for key, value in event.step_materialization_data.materialization.metadata.items():
            if key.startswith("spapi/total/"):
                meta[key] = value.value
failures = [str(e.event_specific_data.error.message) for e in result.all_events if e.is_step_failure]
print("RESULT " + json.dumps({"success": result.success, "run_id": result.run_id, "meta": meta, "failures": failures}))
"""


def spapi_fields(scenario, state_dir: Path) -> dict:
    plans = {name: {"rate": op.rate * RATE_SCALE, "burst": op.burst} for name, op in OPERATIONS.items()}
    return {
        **EMULATOR_DEFAULTS,
        "endpoint": scenario.server.url,
        "token_url": scenario.server.token_url,
        "state_dir": str(state_dir),
        "requests_per_minute": 0,
        "requests_per_day": 0,
        "max_attempts": 3,
        "backoff_base": 0.05,
        "backoff_cap": 0.5,
        "max_total_seconds": 60.0,
        "usage_plans": plans,
    }


def open_orders(scenario) -> None:
    """The seller's notification store with one open FBM order per channel: every run's `reservations` reads it (the
    three processes open it at once, read-only) and subtracts all three orders before its push."""
    written = time.time() - 7200  # the master file was written before the notifications were stored
    os.utime(scenario.data / "master_inventory.csv", (written, written))
    # Amazon's clock (the emulator's) is not ours: a PurchaseDate days before the master's write time must not release
    # the orders, only a master written after we stored them does (sync/orders.py).
    messages = [
        Received(
            f"m-{channel}",
            f"h-{channel}",
            json.dumps(
                order_change(
                    f"555-{channel}", "Unshipped", PURCHASED, [("FBM-1", 2)], market=market, purchase_date=PURCHASED
                )
            ),
        )
        for channel, market in MARKETPLACE.items()
    ]
    batch = prepare_batch(messages, PIPELINE_CHANNELS, datetime.now(UTC))
    assert not batch.rows["dead_letters"], batch.rows["dead_letters"]
    with Warehouse(data_dir=str(scenario.data)).connect_notifications() as con:
        assert len(store_batch(con, batch)) == 3


def start_three(scenario, shared: bool) -> dict[str, dict]:
    """The three channel runs at once; returns channel → the child's outcome."""
    mappings = scenario.data / "channel_mappings.csv"
    mappings.write_text(mappings.read_text(encoding="utf-8") + EXTRA_MAPPINGS, encoding="utf-8")
    open_orders(scenario)
    scenario.start(rate_scale=RATE_SCALE)
    scenario.note_fault(
        f"3 processes (us, uk, de) at once; rates ×{RATE_SCALE:g}; {'one state_dir' if shared else 'a state_dir each'}"
    )
    go = scenario.tmp_path / "go"
    children = {}
    for channel in CHANNELS:
        ready = scenario.tmp_path / f"ready-{channel}"
        state_dir = scenario.tmp_path / ("spapi" if shared else f"spapi-{channel}")
        env = {
            **os.environ,
            "SALES_CHANNEL_CONFIG": str(REPO / "channels.yaml"),
            "RELIABILITY_SPAPI": json.dumps(spapi_fields(scenario, state_dir)),
        }
        children[channel] = (
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(scenario.data), channel, str(ready), str(go)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            ready,
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for _, ready in children.values()):
        assert time.monotonic() < deadline, "the children never got ready"
        assert all(p.poll() is None for p, _ in children.values()), "a child died before the start"
        time.sleep(0.05)
    go.touch()
    outcomes = {}
    for channel, (process, _) in children.items():
        stdout, stderr = process.communicate(timeout=240)
        scenario.texts += [stdout, stderr]
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert process.returncode == 0 and lines, (channel, process.returncode, stderr[-3000:])
        outcomes[channel] = json.loads(lines[-1].removeprefix("RESULT "))
    return outcomes


@pytest.mark.slow
def test_three_channels_of_one_seller_at_once(scenario):
    scenario.not_applicable(4, "orders written to the store directly (no queue)")
    scenario.not_applicable(5, "not checked here: the scenario is about shared budgets and locks")
    outcomes = start_three(scenario, shared=True)
    failed = {c: o["failures"] for c, o in outcomes.items() if not o["success"]}
    assert not failed, f"runs failed: {failed}"
    lock_errors = [t for t in scenario.texts if "Could not set lock" in t or "Conflicting lock" in t]
    assert not lock_errors, "a run hit the DuckDB lock"
    # No 429: neither as the emulator answered (wiretap) nor as each run's client counted.
    throttled = {c: o["meta"].get("spapi/total/throttled") for c, o in outcomes.items()}
    throttled_ops = sorted(e.operation for e in scenario.tap.api() if e.status == 429)
    assert scenario.tap.throttled() == 0, f"the emulator answered {scenario.tap.throttled()} 429(s): {throttled_ops}"
    assert throttled == dict.fromkeys(CHANNELS, 0), throttled
    waited = {c: o["meta"].get("spapi/total/waited_seconds") for c, o in outcomes.items()}
    scenario.note_fault("client waits " + ", ".join(f"{c} {w:.1f} s" for c, w in waited.items()))
    offers = scenario.tap.calls("getItemOffersBatch")
    assert len(offers) >= 3, "the three runs did not all ask for offers"
    for channel, outcome in outcomes.items():
        # the stock is the seller's: each channel holds all three channels' orders (3 × 2 units)
        reserved = query(scenario.data, channel, "SELECT sku, reserved_quantity FROM reservations")
        assert reserved == [("FBM-1", 6)], (channel, reserved)
        scenario.check_final_status(outcome["run_id"], channel)
        scenario.check_bounds(channel, since=0)  # all three runs' requests (invariant 2 filters by marketplace)
        scenario.retried[outcome["run_id"]] = int(outcome["meta"].get("spapi/total/retried") or 0)
    scenario.check_no_double()
    scenario.check_secrets()


@pytest.mark.slow
def test_control_three_channels_without_a_shared_state_dir_are_throttled(scenario):
    """The control: the same load with a state_dir per process (no shared buckets) does draw 429s from the emulator,
    so the zero above is the shared throttle's doing, not a load too light to matter."""
    scenario.not_applicable(2, "a control run that is expected to draw 429s; its bounds are not the point")
    scenario.not_applicable(4, "no notifications in this control")
    scenario.not_applicable(5, "a control run: runs may fail on 429 by design")
    scenario.not_applicable(6, "a control run: the secrets scan is done by the scenario it controls")
    outcomes = start_three(scenario, shared=False)
    assert scenario.tap.throttled() > 0, "three unshared clients at these rates should have drawn a 429"
    for channel, outcome in outcomes.items():
        scenario.retried[outcome["run_id"]] = int(outcome["meta"].get("spapi/total/retried") or 0)
        if outcome["success"]:
            scenario.check_final_status(outcome["run_id"], channel)
    scenario.check_no_double()
