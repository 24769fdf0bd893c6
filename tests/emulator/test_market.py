"""The emulated market: module caps per selling partner, competitor moves at a rate, the notified share of ASINs,
the logs of moves and of our accepted prices (`/_emulator/market`), and the ANY_OFFER_CHANGED payload."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx

from emulator.clock import parse_iso
from emulator.market import quantized_move
from emulator.testing import (
    DE,
    JP,
    SELLER,
    TEST_CHANNELS,
    US,
    Api,
    conform,
    conform_schema,
    fbm_listing,
    price_patch,
)
from seller.config import parse_channels
from seller.marketplaces import MARKETPLACES

PARTICIPATIONS = "/sellers/v1/marketplaceParticipations"
ITEMS = f"/listings/2021-08-01/items/{SELLER}"
MOVER = "spapi-emulator-market"
OTHER_SELLER = "A2OTHERSELLER9"
SLOW = 0.01  # time_scale: emulated time moves only by clock advances, in effect (windows and rates stay exact)


def mover_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == MOVER]


def market(api: Api, **params: str) -> dict:
    return api.control("GET", "/market", params=params)


def advance(api: Api, seconds: float) -> None:
    api.control("POST", "/clock/advance", json={"seconds": seconds})


def wait_for_moves(api: Api, count: int) -> list[dict]:
    """The moves once at least `count` are logged (the mover catches up with a clock advance within a tick)."""
    deadline = time.monotonic() + 10
    while True:
        moves = market(api)["moves"]
        if len(moves) >= count or time.monotonic() > deadline:
            return moves
        time.sleep(0.05)


def subscribe_any_offer_changed(api: Api) -> None:
    """A destination and an ANY_OFFER_CHANGED subscription: notifications are then logged (no SQS needed)."""
    grantless = Api(api.server, scope="sellingpartnerapi::notifications")
    destination = grantless(
        "POST",
        "/notifications/v1/destinations",
        json={"name": "q", "resourceSpecification": {"sqs": {"arn": "arn:aws:sqs:us-east-1:000000000000:q"}}},
    )
    assert destination.status_code == 200, destination.text
    created = api(
        "POST",
        "/notifications/v1/subscriptions/ANY_OFFER_CHANGED",
        json={"payloadVersion": "1.0", "destinationId": destination.json()["payload"]["destinationId"]},
    )
    assert created.status_code == 200, created.text


def listings_feed(api: Api, messages: list[dict]) -> dict:
    """Submit a JSON_LISTINGS_FEED and step the clock until Amazon has processed it."""
    doc = json.dumps({"header": {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"}, "messages": messages})
    created = api("POST", "/feeds/2021-06-30/documents", json={"contentType": "application/json"}).json()
    assert httpx.put(created["url"], content=doc.encode(), headers={"Content-Type": "application/json"}).is_success
    feed_id = api(
        "POST",
        "/feeds/2021-06-30/feeds",
        json={
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [US],
            "inputFeedDocumentId": created["feedDocumentId"],
        },
    ).json()["feedId"]
    for _ in range(50):
        feed = api("GET", f"/feeds/2021-06-30/feeds/{feed_id}").json()
        if feed["processingStatus"] in ("DONE", "FATAL", "CANCELLED"):
            return feed
        advance(api, 1)
    raise AssertionError("feed never finished")


def any_offer_changed(api: Api) -> list[dict]:
    return [
        n["message"] for n in api.control("GET", "/notifications")["notifications"] if n["type"] == "ANY_OFFER_CHANGED"
    ]


# --- module caps ------------------------------------------------------------------------------------------------------
def test_module_caps_answer_429_past_30_a_minute_per_seller_and_recover_after_the_window(emulator_factory):
    channels = {
        **TEST_CHANNELS,
        **parse_channels(
            {"channels": [{"name": "other", "seller_id": OTHER_SELLER, "marketplace_id": US, "region": "na"}]},
            source="test",
        ),
    }
    server = emulator_factory(
        channels=channels, rate_scale=0, time_scale=SLOW, requests_per_minute=30, requests_per_day=40
    )
    api = Api(server)
    # all marketplaces (regions) of the seller share the cap
    for i in range(30):
        mp = (US, DE, JP)[i % 3]
        assert api("GET", f"{ITEMS}/NO-SUCH-SKU", params={"marketplaceIds": mp}).status_code == 404
    over = api("GET", PARTICIPATIONS)
    assert over.status_code == 429
    assert over.json()["errors"][0]["code"] == "QuotaExceeded"
    assert over.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    conform("sellers", "getMarketplaceParticipations", 429, over.json())
    # another selling partner has its own windows; grantless calls count against none
    other = httpx.post(
        server.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": f"Atzr|emulator-refresh-token-{OTHER_SELLER}",
            "client_id": server.state.store.tokens.credentials.client_id,
            "client_secret": server.state.store.tokens.credentials.client_secret,
        },
    ).json()["access_token"]
    assert httpx.get(server.url + PARTICIPATIONS, headers={"x-amz-access-token": other}).status_code == 200
    grantless = Api(server, scope="sellingpartnerapi::notifications")
    assert [grantless("GET", "/notifications/v1/destinations").status_code for _ in range(35)] == [200] * 35
    # the window slides: 59 s later the 30 are still inside it, 60 s later they have left it
    advance(api, 59)
    assert api("GET", PARTICIPATIONS).status_code == 429
    advance(api, 1)
    assert [api("GET", PARTICIPATIONS).status_code for _ in range(10)] == [200] * 10
    # the day cap (40) holds after the minute window has passed
    assert api("GET", PARTICIPATIONS).status_code == 429
    advance(api, 120)
    assert api("GET", PARTICIPATIONS).status_code == 429
    state = market(api)
    assert state["settings"]["requestsPerMinute"] == 30 and state["settings"]["requestsPerDay"] == 40
    assert state["requests"][SELLER] == {"getListingsItem": 30, "getMarketplaceParticipations": 10}
    assert state["requests"][OTHER_SELLER] == {"getMarketplaceParticipations": 1}
    assert state["requests"]["grantless"] == {"getDestinations": 35}
    assert state["throttled"][SELLER] == {"bucket": 0, "cap": 4}
    assert OTHER_SELLER not in state["throttled"]


def test_a_bucket_throttled_request_does_not_count_against_the_caps(emulator_factory):
    # Amazon's rates: getMarketplaceParticipations has a burst of 15 and refills one per minute
    api = Api(emulator_factory(rate_scale=1, time_scale=SLOW, requests_per_minute=20))
    codes = [api("GET", PARTICIPATIONS).status_code for _ in range(25)]
    assert codes == [200] * 15 + [429] * 10
    # 15 admitted so far: 5 more fit under the cap of 20, whatever the 10 bucket throttles
    assert [api("GET", f"{ITEMS}/NO-SUCH-SKU", params={"marketplaceIds": US}).status_code for _ in range(6)] == [
        404
    ] * 5 + [429]
    assert market(api)["throttled"][SELLER] == {"bucket": 10, "cap": 1}


def test_a_cap_throttled_request_does_not_count_against_the_caps(emulator_factory):
    api = Api(emulator_factory(rate_scale=0, time_scale=SLOW, requests_per_minute=20))
    assert [api("GET", PARTICIPATIONS).status_code for _ in range(20)] == [200] * 20
    advance(api, 30)
    assert [api("GET", PARTICIPATIONS).status_code for _ in range(5)] == [429] * 5
    advance(api, 30)  # the first 20 leave the window; the 5 refused ones were never in it
    assert [api("GET", PARTICIPATIONS).status_code for _ in range(21)] == [200] * 20 + [429]
    assert market(api)["throttled"][SELLER] == {"bucket": 0, "cap": 6}


def test_caps_off_by_default(api):
    assert [api("GET", f"{ITEMS}/NO-SUCH-SKU", params={"marketplaceIds": US}).status_code for _ in range(40)] == [
        404
    ] * 40
    state = market(api)
    assert state["settings"] == {
        "movesPerMinute": 0.0,
        "notifiedShare": 1.0,
        "requestsPerMinute": 0,
        "requestsPerDay": 0,
    }
    assert state["requests"] == {SELLER: {"getListingsItem": 40}} and state["throttled"] == {}
    assert state["moves"] == [] and state["ourPrices"] == []


# --- competitor moves -------------------------------------------------------------------------------------------------
def test_the_mover_moves_competitors_at_the_rate_and_stops_with_the_server(emulator_factory):
    server = emulator_factory(time_scale=SLOW, competitor_moves_per_minute=20)
    api = Api(server)
    assert len(mover_threads()) == 1
    with server.state.lock:
        prices = {
            (mp, asin, o.seller_id): o.price for (mp, asin), offers in server.state.store.offers.items() for o in offers
        }
        listed = {(listing.marketplace_id, listing.asin) for listing in server.state.store.listings.values()}
    advance(api, 60)
    moves = wait_for_moves(api, 20)
    assert len(moves) == 20
    assert len({(m["marketplaceId"], m["asin"]) for m in moves}) > 10  # random pairs, not one
    for move in moves:
        key = (move["marketplaceId"], move["asin"], move["sellerId"])
        assert (move["marketplaceId"], move["asin"]) in listed  # only ASINs the seller lists
        decimals = MARKETPLACES[move["marketplaceId"]].decimals
        new, old = Decimal(move["price"]), prices[key]
        assert new.as_tuple().exponent == -decimals  # whole minor units, JPY without decimals
        unit = Decimal(1).scaleb(-decimals)
        assert new != old and new >= unit
        assert abs(new - old) <= old * Decimal("0.05") + unit
        prices[key] = new
    with server.state.lock:
        for (mp, asin, seller), price in prices.items():
            assert next(o.price for o in server.state.store.offers[(mp, asin)] if o.seller_id == seller) == price
    server.stop()
    assert mover_threads() == []
    count = len(server.state.market.moves)
    server.clock.advance(600)
    time.sleep(0.2)
    assert len(server.state.market.moves) == count


def test_move_candidates_follow_new_offers_and_removed_listings_and_stay_cached_otherwise(api):
    state = api.server.state
    listings = api.control("GET", "/listings", params={"marketplaceId": US})["listings"]
    with state.lock:
        cached = state.move_candidates()
        assert state.move_candidates() is cached  # no change, no rebuild
        bare = next(x for x in listings if (US, x["asin"]) not in cached)  # listed, no competitor yet
        single = next(
            x for x in listings if (US, x["asin"]) in cached and sum(y["asin"] == x["asin"] for y in listings) == 1
        )
    patched = api(
        "PATCH",
        f"{ITEMS}/{single['sku']}",
        params={"marketplaceIds": US},
        json={"productType": "PRODUCT", "patches": [price_patch(single["maxPrice"])]},
    )
    assert patched.json()["status"] == "ACCEPTED"
    with state.lock:
        assert state.move_candidates() is cached  # a price change leaves the pairs as they are
    api.control(
        "POST", "/competitors", json={"marketplaceId": US, "asin": bare["asin"], "sellerId": "A1NEW", "price": "9.99"}
    )
    with state.lock:
        assert set(state.move_candidates()) == {*cached, (US, bare["asin"])}
    assert api("DELETE", f"{ITEMS}/{single['sku']}", params={"marketplaceIds": US}).json()["status"] == "ACCEPTED"
    with state.lock:
        assert set(state.move_candidates()) == {*cached, (US, bare["asin"])} - {(US, single["asin"])}


def test_no_mover_thread_at_rate_zero_until_a_rate_is_set_at_run_time(emulator_factory):
    api = Api(emulator_factory(time_scale=SLOW))
    assert mover_threads() == []
    advance(api, 600)
    time.sleep(0.2)
    assert market(api)["moves"] == []
    settings = api.control("POST", "/market", json={"movesPerMinute": 30})["settings"]
    assert settings["movesPerMinute"] == 30.0 and settings["notifiedShare"] == 1.0
    assert len(mover_threads()) == 1
    advance(api, 60)
    moves = wait_for_moves(api, 30)
    assert len(moves) == 30
    api.control("POST", "/market", json={"movesPerMinute": 0})
    time.sleep(0.2)
    before = len(market(api)["moves"])
    advance(api, 600)
    time.sleep(0.2)
    assert len(market(api)["moves"]) == before
    for bad in ({"movesPerMinute": -1}, {"notifiedShare": 1.5}, {"notifiedShare": "half"}):
        assert api.http.post("/_emulator/market", json=bad).status_code == 400


def test_quantized_move_whole_minor_units_at_least_one_away_never_below_one():
    assert quantized_move(Decimal("19.99"), 2, -500) == Decimal("18.99")  # -99.95 cents, rounded half-even
    assert quantized_move(Decimal("19.99"), 2, 1) == Decimal("20.00")  # 0.2 cents rounds to 0: one cent
    assert quantized_move(Decimal("19.99"), 2, -1) == Decimal("19.98")
    assert quantized_move(Decimal("0.01"), 2, -500) == Decimal("0.02")  # cannot go below one cent
    assert str(quantized_move(Decimal("1500"), 0, 500)) == "1575"  # JPY: whole yen


# --- the notified share -----------------------------------------------------------------------------------------------
def test_notified_share_zero_keeps_every_asin_silent_also_for_our_own_changes(emulator_factory):
    api = Api(emulator_factory(time_scale=SLOW, competitor_moves_per_minute=30, notified_share=0.0))
    subscribe_any_offer_changed(api)
    listing = fbm_listing(api)
    assert (
        api(
            "PATCH",
            f"{ITEMS}/{listing['sku']}",
            params={"marketplaceIds": US},
            json={"productType": "PRODUCT", "patches": [price_patch(listing["minPrice"])]},
        ).json()["status"]
        == "ACCEPTED"
    )
    advance(api, 60)
    moves = wait_for_moves(api, 30)
    assert len(moves) >= 30 and not any(m["notified"] for m in moves)
    assert any_offer_changed(api) == []


def test_notified_share_one_notifies_every_move_at_its_time(emulator_factory):
    api = Api(emulator_factory(time_scale=SLOW, competitor_moves_per_minute=30))
    subscribe_any_offer_changed(api)
    advance(api, 60)
    moves = wait_for_moves(api, 30)
    assert len(moves) >= 30 and all(m["notified"] for m in moves)
    time.sleep(0.1)
    moves = market(api)["moves"]
    triggers = [n["Payload"]["AnyOfferChangedNotification"]["OfferChangeTrigger"] for n in any_offer_changed(api)]
    assert [(t["MarketplaceId"], t["ASIN"], t["TimeOfOfferChange"], t["OfferChangeType"]) for t in triggers] == [
        (m["marketplaceId"], m["asin"], m["at"], "External") for m in moves
    ]


def test_notified_share_half_silences_about_half_of_the_asins_deterministically(emulator_factory):
    runs = []
    for _ in range(2):
        api = Api(emulator_factory(time_scale=SLOW, competitor_moves_per_minute=120, notified_share=0.5))
        subscribe_any_offer_changed(api)
        advance(api, 180)
        runs.append(wait_for_moves(api, 360))
    assert len(runs[0]) == len(runs[1]) == 360
    assert runs[0] == [{**m, "at": a["at"]} for m, a in zip(runs[1], runs[0], strict=True)]  # same seed, same market
    by_pair: dict[tuple[str, str], set[bool]] = {}
    for move in runs[0]:
        by_pair.setdefault((move["marketplaceId"], move["asin"]), set()).add(move["notified"])
    assert all(len(flags) == 1 for flags in by_pair.values())  # an ASIN is notified always or never
    notified = sum(1 for flags in by_pair.values() if True in flags)
    assert len(by_pair) > 150 and 0.35 < notified / len(by_pair) < 0.65


# --- the logs ---------------------------------------------------------------------------------------------------------
def test_our_prices_log_patches_and_feeds_with_their_time_and_since_filters(api):
    first, second = [
        listing
        for listing in api.control("GET", "/listings", params={"marketplaceId": US})["listings"]
        if listing["fulfillment"] == "FBM" and listing["productType"] != "WATCH" and listing["price"]
    ][:2]
    before = api.control("GET", "/clock")["epoch"]
    patched = api(
        "PATCH",
        f"{ITEMS}/{first['sku']}",
        params={"marketplaceIds": US},
        json={"productType": "PRODUCT", "patches": [price_patch(first["minPrice"])]},
    )
    assert patched.json()["status"] == "ACCEPTED"
    after = api.control("GET", "/clock")["epoch"]
    assert first["minPrice"] != first["price"]
    [entry] = market(api)["ourPrices"]
    assert {k: v for k, v in entry.items() if k != "at"} == {
        "sellerId": SELLER,
        "marketplaceId": US,
        "sku": first["sku"],
        "asin": first["asin"],
        "price": first["minPrice"],
    }
    assert before - 0.001 <= parse_iso(entry["at"]) <= after
    # the same price again is no change; a competitor's move is not ours
    api(
        "PATCH",
        f"{ITEMS}/{first['sku']}",
        params={"marketplaceIds": US},
        json={"productType": "PRODUCT", "patches": [price_patch(first["minPrice"])]},
    )
    api.control(
        "POST",
        "/competitors",
        json={"marketplaceId": US, "asin": first["asin"], "sellerId": "A1RIVAL", "price": "5.00"},
    )
    assert len(market(api)["ourPrices"]) == 1
    advance(api, 100)
    message = {"messageId": 1, "sku": second["sku"], "operationType": "PATCH", "productType": "PRODUCT"}
    assert listings_feed(api, [{**message, "patches": [price_patch(second["maxPrice"])]}])["processingStatus"] == "DONE"
    log = market(api)
    assert [(e["sku"], e["price"]) for e in log["ourPrices"]] == [
        (first["sku"], first["minPrice"]),
        (second["sku"], second["maxPrice"]),
    ]
    assert parse_iso(log["ourPrices"][1]["at"]) >= parse_iso(entry["at"]) + 100
    assert [m["price"] for m in log["moves"]] == ["5.00"] and log["moves"][0]["sellerId"] == "A1RIVAL"
    # since: at or after, to the millisecond
    since = market(api, since=log["ourPrices"][1]["at"])
    assert since["ourPrices"] == log["ourPrices"][1:] and since["moves"] == []
    assert market(api, since=entry["at"])["ourPrices"] == log["ourPrices"]
    assert api.http.get("/_emulator/market", params={"since": "yesterday"}).status_code == 400


# --- ANY_OFFER_CHANGED ------------------------------------------------------------------------------------------------
def test_any_offer_changed_payload_carries_the_offers_and_summary_at_the_time_of_the_move(api):
    subscribe_any_offer_changed(api)
    listing = fbm_listing(api)
    advance(api, 0.4567)
    for seller, price, fulfillment in (("A1RIVALFBA", "1.50", "FBA"), ("A1RIVALFBM", "1.00", "FBM")):
        api.control(
            "POST",
            "/competitors",
            json={
                "marketplaceId": US,
                "asin": listing["asin"],
                "sellerId": seller,
                "price": price,
                "fulfillment": fulfillment,
            },
        )
    move = market(api)["moves"][-1]
    note = any_offer_changed(api)[-1]
    conform_schema("notifications/AnyOfferChangedNotification.json", note)
    body = note["Payload"]["AnyOfferChangedNotification"]
    assert body["OfferChangeTrigger"]["TimeOfOfferChange"] == move["at"]
    assert move["at"].endswith("Z") and len(move["at"]) == len("2025-01-31T12:00:00.123Z")
    offers = body["Offers"]
    for offer in offers:
        assert {
            "IsFeaturedMerchant",
            "IsBuyBoxWinner",
            "PrimeInformation",
            "SellerFeedbackRating",
            "ShippingTime",
        } <= set(offer)
    assert [o["SellerId"] for o in offers if o["IsBuyBoxWinner"]] == ["A1RIVALFBM"]
    summary = body["Summary"]
    channels = {n["FulfillmentChannel"] for n in summary["NumberOfOffers"]}
    assert channels == {"Amazon", "Merchant"}
    lowest = {p["FulfillmentChannel"]: p["ListingPrice"]["Amount"] for p in summary["LowestPrices"]}
    assert lowest == {"Amazon": 1.5, "Merchant": 1.0}
    assert summary["BuyBoxPrices"][0]["ListingPrice"]["Amount"] == 1.0
    assert summary["CompetitivePriceThreshold"]["Amount"] == 1.0


# --- the command line -------------------------------------------------------------------------------------------------
def test_console_script_takes_the_market_flags(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("spapi-emulator")),
            "--port",
            str(port),
            "--channels",
            str(repo / "channels.yaml"),
            "--requests-per-minute",
            "30",
            "--requests-per-day",
            "36000",
            "--competitor-moves-per-minute",
            "2.5",
            "--notified-share",
            "0.25",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SALES_CHANNEL_CONFIG": str(repo / "channels.yaml")},
    )
    try:
        assert proc.stdout.readline().startswith("spapi-emulator listening on")
        settings = httpx.get(f"http://127.0.0.1:{port}/_emulator/market").json()["settings"]
        assert settings == {
            "movesPerMinute": 2.5,
            "notifiedShare": 0.25,
            "requestsPerMinute": 30,
            "requestsPerDay": 36000,
        }
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
