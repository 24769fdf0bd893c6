"""Cross-channel scenarios (issue 12): the channels of one seller share its stock and its feed window; two sellers on
one deployment share nothing, not even by mistake.

- An order on us arrives (emulator → moto SQS → the real sensor) while uk's first push is in flight: the sensor
  requests inventory_job for us, uk and de, and from the moment the order is stored no quantity above stock minus the
  seller's reservations reaches Amazon on any channel; all three converge on the seller-wide figure (10 − 4 = 6).
- uk and de (one seller, one region) push feeds in separate processes at once, one SKU per feed: never a 6th
  JSON_LISTINGS_FEED submission of the seller in any window, no 429.
- Two sellers: the one without its own grant fails naming the variable and sends nothing; its grant, once given, is
  revoked mid-run and the run stops (ReauthorizationRequired); every request about a seller carried an access token
  issued to that seller; the other seller's channels converge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import yaml

from assets.orders import reservations
from pipelines import partitions
from reliability.invariants import sent_to_amazon
from reliability.wiretap import Wiretap
from seller.config import load_channels
from tests.notifications.helpers import enable, run_sensor, store_rows
from tests.reliability.harness import SELLER
from tests.reliability.test_concurrency import EXTRA_MAPPINGS
from tests.sync.helpers import ALL_ASSETS, MARKETPLACE, listing, query

REPO = Path(__file__).resolve().parents[2]
CHANNELS = ("us", "uk", "de")
WITH_RESERVATIONS = [reservations, *ALL_ASSETS]  # what inventory_job runs for the push: reservations included
SKU = "FBM-1"


def add_channels(scenario) -> None:
    """FBM-1 (and three more SKUs) mapped on uk and de too."""
    mappings = scenario.data / "channel_mappings.csv"
    mappings.write_text(mappings.read_text(encoding="utf-8") + EXTRA_MAPPINGS, encoding="utf-8")


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's message, with the exceptions it wraps."""
    messages = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return " | ".join(messages)


def fault_hits(scenario, kind: str, operation: str) -> int:
    hits = scenario.control("GET", "/faults")["hits"]
    return sum(h["count"] for h in hits if h["kind"] == kind and h["operation"] == operation)


# -- a. an order on one channel while another pushes --------------------------------------------------------------
@pytest.mark.slow
def test_order_on_us_while_uk_pushes_reserves_the_sellers_stock_on_every_channel(scenario, moto_sqs, monkeypatch):
    scenario.not_applicable(4, "one ORDER_CHANGE: asserted stored directly (order_change_items)")
    monkeypatch.setenv("SALES_CHANNEL_SQS_ENDPOINT", moto_sqs)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("SALES_CHANNEL_SQS_WAIT_SECONDS", "1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    add_channels(scenario)
    master = scenario.data / "master_inventory.csv"
    master.write_text(master.read_text(encoding="utf-8").replace("FBM-1,7,", "FBM-1,10,"), encoding="utf-8")
    written = time.time() - 7200  # the seller's last export: before the order, which it does not include
    os.utime(master, (written, written))
    scenario.start(sqs_endpoint=moto_sqs)
    spapi = scenario.spapi()
    with dg.instance_for_test() as instance:
        for channel in ("us", "de"):
            assert scenario.run(channel, assets=WITH_RESERVATIONS).success
        for channel in CHANNELS:
            enable(channel, spapi, instance)
        # uk's first push goes by feed; its createFeed is held 6 s on the way, while the order comes in.
        scenario.fault(kind="latency", operation="createFeed", latency_ms=6000)
        mark = len(scenario.tap.exchanges)
        pool = ThreadPoolExecutor(1)
        uk = pool.submit(
            scenario.run, "uk", spapi=scenario.spapi(), push={"feed_threshold": 0}, assets=WITH_RESERVATIONS
        )
        deadline = time.monotonic() + 120
        while not scenario.tap.calls("createFeed", mark):
            assert time.monotonic() < deadline and not uk.done(), "uk's push never reached createFeed"
            time.sleep(0.05)
        order = {"marketplaceId": MARKETPLACE["us"], "items": [{"sku": SKU, "quantity": 4}]}
        scenario.control("POST", "/orders", json=order)
        scenario.server.state.delivery.flush(5)
        tick = run_sensor(scenario.data, instance)
        ingested = len(scenario.tap.exchanges)
        overlapped = not uk.done()
        requested = sorted((r.job_name, r.partition_key) for r in tick.run_requests)
        assert requested == [("inventory_job", c) for c in sorted(CHANNELS)], requested
        stored = store_rows(scenario.data, "SELECT channel, sku, quantity FROM order_change_items")
        assert stored == [("us", SKU, 4)], stored
        assert overlapped, "uk's push ended before the order was stored: the scenario did not race"
        scenario.note_fault("order for 4 of 10 on us stored while uk's createFeed was held (latency 6 s)")
        raced = uk.result(timeout=180)
        pool.shutdown()
        assert raced.success, failure_text(raced)
        assert fault_hits(scenario, "latency", "createFeed") == 1

        runs = {channel: scenario.run(channel, assets=WITH_RESERVATIONS) for channel in CHANNELS}
    for channel, result in runs.items():
        assert result.success, (channel, failure_text(result))
    # From the moment the order was stored: nothing above 10 − 4 reached Amazon for FBM-1, on any channel.
    sent = {
        c: [int(o["quantity"]) for o in sent_to_amazon(scenario.tap, MARKETPLACE[c], ingested) if o["sku"] == SKU]
        for c in CHANNELS
    }
    assert all(q <= 6 for quantities in sent.values() for q in quantities), sent
    assert 6 in sent["uk"], f"uk's raced push left Amazon at 10 and the requested run did not correct it: {sent}"
    for channel, result in runs.items():
        assert query(scenario.data, channel, "SELECT sku, reserved_quantity FROM reservations") == [(SKU, 4)], channel
        assert listing(scenario.server, SKU, channel)["quantity"] == 6, channel
        scenario.check_final_status(result.run_id, channel)
        scenario.check_bounds(channel, since=ingested)
        scenario.check_converged(result.run_id, channel)
    scenario.check_no_double()
    scenario.check_secrets()


# -- b. two EU channels of one seller pushing feeds in the same window ---------------------------------------------
FEED_RATE_SCALE = 60.0  # the emulator's JSON_LISTINGS_FEED window: 300 s / 60 = 5 s
FEED_WINDOW = 300.0 / FEED_RATE_SCALE


@pytest.mark.slow
def test_two_eu_channels_of_one_seller_push_feeds_in_the_same_window(scenario):
    add_channels(scenario)
    scenario.start(rate_scale=FEED_RATE_SCALE, feed_step_seconds=0.2)
    eu = ("uk", "de")
    for channel in eu:  # inputs, pulls and prices; nothing sent (the children push)
        assert scenario.run(channel, push={"offline": True}).success
    go = scenario.tmp_path / "go"
    children = {}
    for channel in eu:
        command = [
            sys.executable,
            "-m",
            "reliability.push_child",
            str(scenario.data),
            channel,
            scenario.server.url,
            str(scenario.tmp_path / "spapi"),
            f"push-{channel}",
            "none",
            "max_messages=1",
            f"rate_scale={FEED_RATE_SCALE:g}",
            f"feed_window={FEED_WINDOW:g}",
            f"go={go}",
        ]
        env = {**os.environ, "SALES_CHANNEL_CONFIG": str(REPO / "channels.yaml")}
        children[channel] = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    deadline = time.monotonic() + 120
    while len(list(scenario.tmp_path.glob("go.*.ready"))) < len(eu):
        assert time.monotonic() < deadline, "the pushes never got ready"
        assert all(p.poll() is None for p in children.values()), "a push died before the start"
        time.sleep(0.05)
    go.touch()
    outcomes = {}
    for channel, process in children.items():
        stdout, stderr = process.communicate(timeout=240)
        scenario.texts += [stdout, stderr]
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert process.returncode == 0 and lines, (channel, process.returncode, stderr[-3000:])
        outcomes[channel] = json.loads(lines[-1].removeprefix("RESULT "))
    scenario.note_fault(
        f"uk + de pushes at once, one SKU per feed; window {FEED_WINDOW:g} s (rates ×{FEED_RATE_SCALE:g})"
    )

    # Amazon's side: the seller's JSON_LISTINGS_FEED creation times, never 6 in one window.
    with scenario.server.state.lock:
        created = sorted(
            f.created
            for f in scenario.server.state.store.feeds.values()
            if f.seller_id == SELLER and f.feed_type == "JSON_LISTINGS_FEED"
        )
    assert len(created) == sum(o["feeds_submitted"] for o in outcomes.values()) > 5, (created, outcomes)
    busiest = max(sum(1 for t in created if start <= t < start + FEED_WINDOW) for start in created)
    assert busiest <= 5, f"{busiest} JSON_LISTINGS_FEED submissions of {SELLER} within {FEED_WINDOW:g} s"
    assert created[5] - created[0] >= FEED_WINDOW, "the 6th submission did not wait for the window"
    waited = sum(float(o.get("spapi/total/waited_seconds") or 0) for o in outcomes.values())
    assert waited > 0, "no push waited for a submission slot"
    assert scenario.tap.throttled() == 0, f"the emulator answered {scenario.tap.throttled()} 429(s)"
    assert [o.get("spapi/total/throttled") for o in outcomes.values()] == [0, 0], outcomes
    scenario.note_fault(f"{len(created)} feeds, at most {busiest} per window; pushes waited {waited:.1f} s")
    for channel, outcome in outcomes.items():
        scenario.retried[f"push-{channel}"] = int(outcome.get("spapi/total/retried") or 0)
        statuses = scenario.check_final_status(f"push-{channel}", channel)
        assert set(statuses.values()) == {"accepted"}, (channel, statuses)
        scenario.check_bounds(channel, since=0)
        scenario.check_converged(f"push-{channel}", channel)
    scenario.check_no_double()
    scenario.check_secrets()


# -- c. two sellers, one grant missing, one revoked mid-run -------------------------------------------------------
SELLER_B = "A2SECONDSELLER7"
GRANT = "Atzr|emulator-refresh-token-{}"  # the emulator's per-seller refresh tokens (emulator/README.md)


@dataclass
class Seen:
    """One SP-API request as the emulator received it, with the seller its access token was issued to."""

    method: str
    path: str
    body: bytes
    token_seller: str | None
    status: int | None = None


class SellerTap:
    """Which seller's access token every SP-API request carried: read from the emulator's token store (each refresh
    token authorizes one seller; the access token records it) when the request arrives. `after` is called with each
    answered request."""

    def __init__(self, server, after=None) -> None:
        self.seen: list[Seen] = []
        self.after = after
        self._lock = threading.Lock()
        original = server.dispatch
        tokens = server.state.store.tokens

        def dispatch(method, raw_path, headers, body, request_id):
            if raw_path.startswith(("/auth/", "/_emulator/", "/_s3/")):
                return original(method, raw_path, headers, body, request_id)
            issued = tokens.access.get((headers.get("x-amz-access-token") or "").strip())
            seen = Seen(method, raw_path, body, issued.seller_id if issued else None)
            with self._lock:
                self.seen.append(seen)
            response = original(method, raw_path, headers, body, request_id)
            seen.status = response.status
            if self.after is not None:
                self.after(seen)
            return response

        server.dispatch = dispatch

    def about(self, seller: str, marketplaces: tuple[str, ...], since: int = 0) -> list[Seen]:
        """Requests that name the seller (listings paths) or one of its marketplaces (query or body)."""
        needles = (seller, *marketplaces)
        return [s for s in self.seen[since:] if any(n in s.path or n.encode() in (s.body or b"") for n in needles)]


def two_sellers(scenario, monkeypatch) -> dict[str, Any]:
    """us and de: the demo seller; uk: SELLER_B. The config as the code location would load it (partitions too)."""
    config = scenario.tmp_path / "channels.yaml"
    entries = [
        {"name": "us", "seller_id": SELLER, "marketplace_id": MARKETPLACE["us"], "region": "na"},
        {"name": "uk", "seller_id": SELLER_B, "marketplace_id": MARKETPLACE["uk"], "region": "eu"},
        {"name": "de", "seller_id": SELLER, "marketplace_id": MARKETPLACE["de"], "region": "eu"},
    ]
    config.write_text(yaml.safe_dump({"channels": entries}), encoding="utf-8")
    channels = load_channels(config)
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(config))
    for name, channel in channels.items():
        monkeypatch.setitem(partitions.CHANNELS, name, channel)
    monkeypatch.setenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER}", GRANT.format(SELLER))
    monkeypatch.delenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}", raising=False)
    return channels


def test_two_sellers_one_grant_missing_then_revoked_mid_run(scenario, monkeypatch):
    add_channels(scenario)
    channels = two_sellers(scenario, monkeypatch)
    # The harness's start() seeds the pipeline's one-seller config; this deployment has two sellers.
    scenario.server = scenario.factory(synthetic=None, seed_from=str(scenario.data), channels=channels)
    scenario.tap = Wiretap(scenario.server)
    revoked = threading.Event()
    armed = threading.Event()

    def revoke_after_first_answer(seen: Seen) -> None:
        if armed.is_set() and not revoked.is_set() and seen.token_seller == SELLER_B and seen.status == 200:
            revoked.set()
            answer = httpx.post(
                scenario.server.url + "/_emulator/tokens/revoke",
                json={"refresh_token": GRANT.format(SELLER_B)},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text

    tap = SellerTap(scenario.server, after=revoke_after_first_answer)
    ours = ("us", "de")
    theirs = (MARKETPLACE["uk"],)

    # 1. SELLER_B has no grant of its own: its run fails before any call, naming the variable.
    missing = scenario.run("uk")
    assert not missing.success
    text = failure_text(missing)
    assert f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}" in text and "Atzr|" not in text, text
    assert tap.about(SELLER_B, theirs) == [], "a request about the seller without a grant reached Amazon"
    scenario.check_nothing_published("uk")
    scenario.note_fault(f"no SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}")
    first = {channel: scenario.run(channel) for channel in ours}
    for channel, result in first.items():
        assert result.success, (channel, failure_text(result))

    # 2. Its grant given, then revoked (POST /_emulator/tokens/revoke) right after Amazon's first answer to it.
    monkeypatch.setenv(f"SPAPI_LWA_REFRESH_TOKEN_{SELLER_B}", GRANT.format(SELLER_B))
    mark = len(tap.seen)
    exchanges = len(scenario.tap.exchanges)
    armed.set()
    cut = scenario.run("uk", spapi=scenario.spapi())
    assert revoked.is_set(), "seller B's run never got an answer to revoke after"
    scenario.note_fault(f"{SELLER_B}'s refresh token revoked after its first answer")
    assert not cut.success, "a revoked grant must stop the run"
    text = failure_text(cut)
    assert "ReauthorizationRequired" in text or "re-authorize" in text, text
    assert "Atzr|" not in text, text
    refused = [s for s in tap.seen[mark:] if s.token_seller == SELLER_B and s.status == 403]
    denied = [e for e in scenario.tap.exchanges[exchanges:] if e.operation == "token" and e.status == 400]
    assert refused and denied, "the revocation was never hit (no 403 with B's token, no invalid_grant)"
    scenario.check_nothing_published("uk")
    second = {channel: scenario.run(channel, spapi=scenario.spapi()) for channel in ours}

    # Every request about a seller carried a token issued to that seller, in both phases.
    about_b = tap.about(SELLER_B, theirs)
    about_a = tap.about(SELLER, tuple(MARKETPLACE[c] for c in ours))
    assert about_b and about_a
    wrong = [(s.method, s.path, s.token_seller) for s in about_b if s.token_seller != SELLER_B]
    wrong += [(s.method, s.path, s.token_seller) for s in about_a if s.token_seller != SELLER]
    assert not wrong, f"requests sent with another seller's token: {wrong[:5]}"
    assert {s.token_seller for s in tap.seen} <= {SELLER, SELLER_B}, "a request without a seller's token"

    # The other seller's channels converge, before and after the revocation.
    for runs in (first, second):
        for channel, result in runs.items():
            assert result.success, (channel, failure_text(result))
            scenario.check_final_status(result.run_id, channel)
            scenario.check_converged(result.run_id, channel)
    scenario.check_bounds("us", since=0)
    scenario.check_bounds("de", since=0)
    scenario.check_no_double()
    scenario.check_secrets()
