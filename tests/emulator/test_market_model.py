"""The market model (`emulator.market_model`, `--market`): the Buy Box award worked by hand, each
competitor strategy's moves, suppression, seeded demand, and the model inside the emulator (orders through the orders
API, the clock's time scale)."""

from __future__ import annotations

import random
import time

import pytest

from emulator.cli import build_parser
from emulator.market_model import (
    MarketModel,
    Offer,
    award,
    fees_minor,
    median_x2,
    next_price,
    score_e4,
)
from emulator.testing import US, Api

START = 1_740_000_000.0


def offer(seller: str, landed: int, *, fba: bool = False, rating: int | None = 90, quantity: int = 5, **kw) -> Offer:
    return Offer(seller, landed, 0, fba, rating, quantity, **kw)


# --- the award, by hand ----------------------------------------------------------------------------------------------
def test_fba_advantage_is_three_percent_of_landed() -> None:
    # FBA 10.30: 1030 × 9700 = 9,991,000 beats FBM 10.00: 1000 × 10000 = 10,000,000; at 10.32 (10,010,400) it loses
    assert score_e4(offer("A1", 1030, fba=True)) == 9_991_000
    assert award([offer("A1FBM", 1000), offer("A2FBA", 1030, fba=True)]).seller_id == "A2FBA"
    assert award([offer("A1FBM", 1000), offer("A2FBA", 1032, fba=True)]).seller_id == "A1FBM"


def test_feedback_advantage_from_95_percent() -> None:
    # rating 95 at 10.10: 1010 × 9900 = 9,999,000 < 10,000,000; at 10.11: 10,008,900; rating 94 gets nothing
    assert award([offer("A1", 1000, rating=94), offer("A2", 1010, rating=95)]).seller_id == "A2"
    assert award([offer("A1", 1000, rating=94), offer("A2", 1011, rating=95)]).seller_id == "A1"
    # both advantages add up: 1000 × 9600
    assert score_e4(offer("A1", 1000, fba=True, rating=99)) == 9_600_000


def test_ties_fba_then_feedback_then_seller_id() -> None:
    # equal scores: FBA (rating 90) at 99.00 = 9900 × 9700; FBM (rating 95) at 97.00 = 9700 × 9900
    fba, fbm = offer("A9FBA", 9900, fba=True), offer("A1FBM", 9700, rating=95)
    assert score_e4(fba) == score_e4(fbm)
    assert award([fbm, fba]).seller_id == "A9FBA"
    # same score and channel: the higher feedback rating, then the lower seller id
    assert award([offer("A1LOW", 1000, rating=96), offer("A9HIGH", 1000, rating=99)]).seller_id == "A9HIGH"
    assert award([offer("A2", 1000, rating=None), offer("A1", 1000, rating=80)]).seller_id == "A1"
    assert award([offer("A2", 1000), offer("A1", 1000)]).seller_id == "A1"


def test_ineligible_offers_never_win() -> None:
    cheap_bad_feedback = offer("A1", 500, rating=69)
    out_of_stock = offer("A2", 600, quantity=0)
    assert award([cheap_bad_feedback, out_of_stock, offer("A3", 1000)]).seller_id == "A3"
    assert award([cheap_bad_feedback, out_of_stock]) is None
    assert award([offer("A4", 700, rating=70), offer("A5", 800, rating=None)]).seller_id == "A4"
    assert award([offer("A5", 800, rating=None), offer("A6", 900)]).seller_id == "A5"  # no rating: eligible


def test_suppression_above_120_percent_of_the_median() -> None:
    assert median_x2([1000, 1300, 900]) == 2000 and median_x2([1100, 1000]) == 2100 and median_x2([]) is None
    assert award([offer("A1", 1200)], reference_x2=2000).seller_id == "A1"  # exactly 1.2 × 10.00
    assert award([offer("A1", 1201)], reference_x2=2000) is None
    assert award([offer("A1", 1260)], reference_x2=2100).seller_id == "A1"  # median 10.50: 1.2 × = 12.60
    assert award([offer("A1", 1261)], reference_x2=2100) is None
    # the best eligible landed price decides, not the winner's: a cheap FBM keeps an FBA's award alive
    assert award([offer("A1", 1200), offer("A2", 1230, fba=True)], reference_x2=2000).seller_id == "A2"
    assert award([offer("A1", 1000, rating=50), offer("A2", 1201)], reference_x2=2000) is None
    assert award([offer("A1", 5000)], reference_x2=None).seller_id == "A1"  # no history: never suppressed


def test_the_model_suppresses_a_jump_and_loses_its_orders() -> None:
    model = MarketModel(1, START)
    model.add_market("B01", [offer("A1OURS", 1000, quantity=10**6, cost_minor=500)], demand_per_hour=30)
    model.advance_to(START + 3 * 3600)
    assert model.reference_x2("B01") == 2000 and model.winner("B01").seller_id == "A1OURS"
    sold = len(model.sales)
    assert sold > 0 and model.lost_orders() == 0
    model.set_offer("B01", "A1OURS", price_minor=1201)
    assert model.winner("B01") is None
    model.advance_to(START + 4 * 3600)
    assert len(model.sales) == sold and model.lost_orders() > 0
    assert model.held_seconds("B01", "A1OURS") == pytest.approx(3 * 3600)
    model.set_offer("B01", "A1OURS", price_minor=1200)
    assert model.winner("B01").seller_id == "A1OURS"


# --- strategies ---------------------------------------------------------------------------------------------------
def test_each_strategy_moves_as_documented() -> None:
    rng = random.Random(1)
    static = offer("A1", 1000, strategy="static")
    assert next_price(static, 800, rng) == 1000
    match = Offer("A2", 1000, 100, strategy="match_lowest", floor_minor=850, ceiling_minor=1300)
    assert next_price(match, 1000, rng) == 900  # landed 10.00 = 9.00 + 1.00 shipping
    assert next_price(match, 900, rng) == 850  # its floor
    assert next_price(match, 2000, rng) == 1300  # its ceiling
    assert next_price(match, None, rng) == 1300
    above = Offer("A3", 1000, 0, strategy="stay_above", floor_minor=950, ceiling_minor=1300, step_minor=10)
    assert next_price(above, 1000, rng) == 1010 and next_price(above, 500, rng) == 950
    walk = Offer("A4", 1000, 0, strategy="random_walk", floor_minor=900, ceiling_minor=1100, step_minor=300)
    moves = [next_price(walk, None, random.Random(7)) for _ in range(3)]
    assert len(set(moves)) == 1 and 970 <= moves[0] <= 1030  # seeded, within ±3 %
    assert all(900 <= next_price(walk, None, rng) <= 1100 for _ in range(200))


def test_undercut_bot_races_down_to_its_floor_then_resets_to_its_ceiling() -> None:
    bot = Offer("A2BOT", 1100, 0, strategy="undercut_bot", floor_minor=958, ceiling_minor=1200, step_minor=5)
    assert next_price(bot, 1000, random.Random()) == 995
    assert next_price(bot, 963, random.Random()) == 958  # exactly its floor
    assert next_price(bot, 962, random.Random()) == 1200  # below the floor: back to the ceiling
    # in the model, against our offer, every 10 minutes
    bot.interval_s = 600
    model = MarketModel(3, START)
    model.add_market("B01", [bot, offer("A1OURS", 1000, quantity=10**6)], demand_per_hour=0)
    model.advance_to(START + 600)
    assert bot.price_minor == 995
    model.set_offer("B01", "A1OURS", price_minor=980)
    model.advance_to(START + 1200)
    assert bot.price_minor == 975
    model.set_offer("B01", "A1OURS", price_minor=960)
    model.advance_to(START + 1800)
    assert bot.price_minor == 1200
    assert model.lowest_price("B01", "A2BOT") == 975
    model.advance_to(START + 2400)
    assert bot.price_minor == 1200  # against our 9.60 the target 9.55 is still below its floor: it stays reset


# --- demand ----------------------------------------------------------------------------------------------------------
def _market(seed: int, our_price: int = 1000) -> MarketModel:
    model = MarketModel(seed, START)
    for n in range(20):
        offers = [
            offer("A1OURS", our_price, fba=True, quantity=10**6, cost_minor=400),
            Offer("A2WALK", 1010, 0, False, 90, 5, "random_walk", 900, 1200, 300, 1800.0),
            Offer("A3BOT", 1020, 0, True, 97, 5, "undercut_bot", 800, 1300, 7, 900.0),
        ]
        model.add_market(f"B{n:03d}", offers, demand_per_hour=0.5 + n / 10)
    model.advance_to(START + 12 * 3600)
    return model


def test_demand_is_seeded_and_reproducible() -> None:
    first, again, other = _market(11), _market(11), _market(12)
    assert first.sales and first.sales == again.sales
    assert [(s.at, s.market) for s in first.sales] != [(s.at, s.market) for s in other.sales]
    # the same orders arrive whatever our price does to the market: only who wins them changes
    dearer = _market(11, our_price=1150)
    assert len(first.sales) + first.lost_orders() == len(dearer.sales) + dearer.lost_orders()
    if not first.lost_orders() and not dearer.lost_orders():
        assert [(s.at, s.market) for s in first.sales] == [(s.at, s.market) for s in dearer.sales]
    assert [s.seller_id for s in first.sales] != [s.seller_id for s in dearer.sales]


def test_demand_follows_the_rate() -> None:
    model = MarketModel(5, START)
    model.add_market("B01", [offer("A1", 1000, quantity=10**6)], demand_per_hour=2.0)
    model.advance_to(START + 500 * 3600)
    assert 900 < len(model.sales) < 1100  # Poisson(2) × 500 hours: mean 1000, sd ≈ 32


def test_fees_and_profit() -> None:
    # 15 % referral on 20.00 = 3.00, FBA small standard 3.22
    assert fees_minor(2000, "HOME", True, "small_standard") == 300 + 322
    assert fees_minor(1010, "HOME", False, "small_standard") == 152  # 151.5 rounds half up
    assert fees_minor(100, "HOME", False, "small_standard") == 30  # the minimum referral fee
    assert fees_minor(1000, "BOOK", False, "small_standard") == 150 + 180  # media: closing fee, no minimum
    model = MarketModel(1, START)
    model.add_market("B01", [offer("A1", 2000, fba=True, quantity=10**6, cost_minor=900)], demand_per_hour=5)
    model.advance_to(START + 3600)
    assert model.sales and all(s.profit_minor == 2000 - 900 - 622 for s in model.sales)


# --- in the emulator -------------------------------------------------------------------------------------------------
def test_market_flag_and_time_scale_parse() -> None:
    args = build_parser().parse_args(["--port", "0", "--market", "--time-scale", "1440"])
    assert args.market is True and args.time_scale == 1440
    assert build_parser().parse_args(["--port", "0"]).market is False


def test_time_scale_compresses_the_market_day(emulator_factory) -> None:
    # 3,600 emulated seconds per real second: the model plays a simulated hour in about a real second
    server = emulator_factory(market=True, time_scale=3600.0, rate_scale=0)
    model = server.state.world.model
    started = time.monotonic()
    while time.monotonic() - started < 10:
        with server.state.lock:
            if model.now - model.start >= 2 * 3600:
                break
        time.sleep(0.05)
    real = time.monotonic() - started
    with server.state.lock:
        assert model.now - model.start >= 2 * 3600
        assert model.sales and model.price_changes > 0
    assert real < 5


def test_sales_won_by_our_listings_are_orders(emulator_factory) -> None:
    server = emulator_factory(market=True, time_scale=0.01, rate_scale=0, start_time=START)
    api = Api(server)
    api.control("POST", "/clock/advance", json={"seconds": 3 * 3600})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        summary = api.control("GET", "/market")["model"]
        if summary["sales"] and summary["sellers"]:
            break
        time.sleep(0.05)
    ours = summary["sellers"]["A3DEMOSELLER01"]
    assert ours["units"] > 0 and ours["buyBoxSeconds"] > 0
    with server.state.lock:
        model_units = sum(1 for s in server.state.world.model.sales if s.seller_id == "A3DEMOSELLER01")
        times = sorted(s.at for s in server.state.world.model.sales if s.seller_id == "A3DEMOSELLER01")
    api.http.close()
    api = Api(server)  # a fresh token: the first expired with the three hours
    listed = api("GET", "/orders/v0/orders", params={"MarketplaceIds": US, "CreatedAfter": "2000-01-01T00:00:00Z"})
    assert listed.status_code == 200, listed.text
    us_orders = listed.json()["payload"]["Orders"]
    assert 0 < len(us_orders) <= model_units
    # each order carries the time of its sale, not the time the ticker played it
    assert all(START <= t <= START + 3 * 3600 for t in times)
    # the pricing API reports the model's winner as the featured offer
    with server.state.lock:
        key = next(k for k, m in server.state.world.model.markets.items() if k[0] == US and m.winner is not None)
        winner = server.state.world.model.winner(key).seller_id
    request = {"uri": f"/products/pricing/v0/items/{key[1]}/offers", "method": "GET", "MarketplaceId": US}
    batch = api(
        "POST", "/batches/products/pricing/v0/itemOffers", json={"requests": [{**request, "ItemCondition": "New"}]}
    )
    assert batch.status_code == 200, batch.text
    featured = [o for o in batch.json()["responses"][0]["body"]["payload"]["Offers"] if o["IsBuyBoxWinner"]]
    assert [o["SellerId"] for o in featured] == [winner]
    api.http.close()
