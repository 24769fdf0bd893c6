"""The emulator's backend: one picklable `Store` of everything Amazon holds, and `EmulatorState`, the rules that
change it across APIs (an order reduces stock, a feed writes listings, each change may emit a notification).

All access goes through `EmulatorState.lock`. Handlers in `<api>/responses.py` call the methods here.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import random
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

from emulator.auth import LwaCredentials, TokenStore
from emulator.clock import Clock, iso
from emulator.feeds.models import Feed, FeedDocument
from emulator.inventory.models import FbaStock
from emulator.jsonutil import money_str
from emulator.listings.models import (
    CatalogItem,
    Issue,
    Listing,
    evaluate_patch,
    evaluate_put,
    fnsku,
    has_errors,
    unknown_sku_issue,
)
from emulator.market import Market, MarketWorld, quantized_move
from emulator.notifications.models import Destination, SqsDelivery, Subscription, envelope
from emulator.orders.models import Order, OrderItem
from emulator.pricing.models import CompetitorOffer, OfferView, buy_box_winner
from seller.config import Channel
from seller.marketplaces import MARKETPLACES

__all__ = ["Store", "EmulatorState", "load_seller_dir"]

log = logging.getLogger("emulator.state")
STATE_FILE = "spapi-emulator-state.pickle"
STATE_VERSION = 1


@dataclass
class Store:
    channels: dict[str, Channel]
    tokens: TokenStore
    gated: frozenset[str]
    catalog: dict[str, CatalogItem] = field(default_factory=dict)
    listings: dict[tuple[str, str, str], Listing] = field(default_factory=dict)
    fba: dict[tuple[str, str, str], FbaStock] = field(default_factory=dict)
    offers: dict[tuple[str, str], list[CompetitorOffer]] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)
    documents: dict[str, FeedDocument] = field(default_factory=dict)
    destinations: dict[str, Destination] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)  # (seller, type)
    price_wars: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    costs: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # the master's cost, for the market
    counter: int = 0
    clock_now: float = 0.0  # emulated time when saved
    version: int = STATE_VERSION

    @property
    def sellers(self) -> list[str]:
        return list(dict.fromkeys(c.seller_id for c in self.channels.values()))

    def marketplaces(self, seller_id: str) -> list[str]:
        return [c.marketplace_id for c in self.channels.values() if c.seller_id == seller_id]


# --- seeding ---------------------------------------------------------------------------------------------------------
def _read_table(data_dir: Path, name: str) -> list[dict[str, str]] | None:
    csv, parquet = data_dir / f"{name}.csv", data_dir / f"{name}.parquet"
    if csv.exists():
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    elif parquet.exists():
        frame = pd.read_parquet(parquet)
        frame = frame.astype(object).where(frame.notna(), "").astype(str)
    else:
        return None
    return frame.to_dict("records")


def _dec(text: str | None, decimals: int | None = None) -> Decimal | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        return None
    return value.quantize(Decimal(1).scaleb(-decimals)) if decimals is not None else value


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(Decimal(str(text).strip()))
    except (InvalidOperation, ValueError, TypeError):
        return default


def load_seller_dir(store: Store, data_dir: Path, now: float) -> dict[str, int]:
    """Fill `store` from the seller data-directory contract (master_inventory, channel_mappings, competitor_prices,
    fba_inventory). Mapped SKUs become live listings; competitor offers (not the seller's own) become Amazon offers."""
    master_rows = _read_table(data_dir, "master_inventory")
    mapping_rows = _read_table(data_dir, "channel_mappings")
    if master_rows is None or mapping_rows is None:
        raise FileNotFoundError(f"{data_dir}: needs master_inventory and channel_mappings (.csv or .parquet)")
    competitor_rows = _read_table(data_dir, "competitor_prices") or []
    fba_rows = _read_table(data_dir, "fba_inventory") or []
    master = {row["sku"]: row for row in master_rows}
    fba_qty = {(row["channel"], row["sku"]): _int(row.get("fulfillable_quantity")) for row in fba_rows}
    counts = {"listings": 0, "fba": 0, "offers": 0}
    for row in mapping_rows:
        channel = store.channels.get(row.get("channel", ""))
        product = master.get(row.get("sku", ""))
        asin = (row.get("asin") or "").strip()
        if channel is None or product is None or not asin:
            continue
        mp, seller, decimals = channel.marketplace_id, channel.seller_id, channel.decimals
        product_type = (product.get("product_type") or "").strip() or "PRODUCT"
        title = product.get("title") or row["sku"]
        if asin not in store.catalog:
            identifiers = []
            if product.get("product_id"):
                identifiers.append(((product.get("product_id_type") or "UPC").upper(), product["product_id"]))
            store.catalog[asin] = CatalogItem(asin, product_type, title, product.get("brand") or None, identifiers)
        fulfillment = "FBA" if (row.get("fulfillment") or "FBM").upper() == "FBA" else "FBM"
        listing = Listing(
            seller_id=seller,
            marketplace_id=mp,
            sku=row["sku"],
            asin=asin,
            product_type=product_type,
            price=_dec(product.get("price"), decimals),
            quantity=0 if fulfillment == "FBA" else max(0, _int(product.get("quantity"))),
            fulfillment=fulfillment,
            min_price=_dec(row.get("min_price"), decimals),
            max_price=_dec(row.get("max_price"), decimals),
            shipping=_dec(row.get("shipping"), decimals) or Decimal(0),
            handling_time=_int(product.get("handling_time_days"), 2) if product.get("handling_time_days") else None,
            title=title,
            brand=product.get("brand") or None,
            created=now,
            updated=now,
        )
        store.listings[(seller, mp, listing.sku)] = listing
        cost = _dec(product.get("cost"), decimals)
        if cost is not None:
            store.costs[(seller, mp, listing.sku)] = cost
        counts["listings"] += 1
        if fulfillment == "FBA":
            store.fba[(seller, mp, listing.sku)] = FbaStock(
                seller,
                mp,
                listing.sku,
                asin,
                fnsku(seller, listing.sku),
                title,
                fba_qty.get((channel.name, listing.sku), 0),
                updated=now,
            )
            counts["fba"] += 1
    for row in competitor_rows:
        channel = store.channels.get(row.get("channel", ""))
        if channel is None or row.get("seller_id") == channel.seller_id or not row.get("asin"):
            continue
        price = _dec(row.get("price"), channel.decimals)
        if price is None:
            continue
        try:
            from emulator.clock import parse_iso

            observed = parse_iso(row["observed_at"]) if row.get("observed_at") else now
        except ValueError:
            observed = now
        store.catalog.setdefault(row["asin"], CatalogItem(row["asin"], "PRODUCT", row["asin"]))
        offer = CompetitorOffer(
            seller_id=row["seller_id"],
            price=price,
            shipping=_dec(row.get("shipping"), channel.decimals) or Decimal(0),
            fulfillment="FBA" if (row.get("fulfillment") or "").upper() == "FBA" else "FBM",
            observed_at=observed,
            feedback_rating=80 + int(hashlib.md5(row["seller_id"].encode()).hexdigest(), 16) % 20,
        )
        offers = store.offers.setdefault((channel.marketplace_id, row["asin"]), [])
        offers[:] = [o for o in offers if o.seller_id != offer.seller_id] + [offer]
        counts["offers"] += 1
    return counts


# --- the backend ---------------------------------------------------------------------------------------------------
class EmulatorState:
    """Rules over the store. Every public method expects `self.lock` to be held by the caller (RLock)."""

    def __init__(
        self,
        channels: dict[str, Channel],
        clock: Clock,
        credentials: LwaCredentials,
        gated: frozenset[str],
        state_dir: Path | None = None,
        seed: int = 7,
        sqs_endpoint: str | None = None,
        market: Market | None = None,
    ) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.state_dir = state_dir
        self.rng = random.Random(seed)
        self.base_url = ""
        self.delivery = SqsDelivery(sqs_endpoint) if sqs_endpoint else None
        self.notification_log: list[dict[str, Any]] = []
        self.dirty = False
        sellers = tuple(dict.fromkeys(c.seller_id for c in channels.values()))
        self.store = Store(channels=channels, tokens=TokenStore(credentials, sellers[0], sellers=sellers), gated=gated)
        self._by_asin: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._move_candidates: list[tuple[str, str]] | None = None  # rebuilt after a change that may alter it
        self.market = market or Market(seed)
        self.world: MarketWorld | None = None  # the market model (`--market`), when on
        from emulator.control import Faults

        self.faults = Faults()

    def faults_take_silent(self, operation: str) -> bool:
        """True when an injected fault says: accept this change but do not apply it (Amazon sometimes does this)."""
        return self.faults.take_silent(operation)

    # --- persistence ----------------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path | None:
        return self.state_dir / STATE_FILE if self.state_dir else None

    def try_restore(self) -> bool:
        path = self.state_file
        if path is None or not path.exists():
            return False
        with path.open("rb") as fh:
            store = pickle.load(fh)
        if getattr(store, "version", None) != STATE_VERSION:
            log.warning(
                "ignoring %s: state version %s, expected %s", path, getattr(store, "version", None), STATE_VERSION
            )
            return False
        store.tokens.credentials = self.store.tokens.credentials  # credentials come from this run's environment
        store.tokens.sellers = tuple(dict.fromkeys((*getattr(store.tokens, "sellers", ()), *self.store.tokens.sellers)))
        self.store = store
        if store.clock_now > self.clock.now():
            self.clock.advance(store.clock_now - self.clock.now())
        self.reindex()
        return True

    def save(self) -> None:
        path = self.state_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.store.clock_now = self.clock.now()
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self.store, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
        self.dirty = False

    def reindex(self) -> None:
        self._by_asin = {}
        for (seller, mp, sku), listing in self.store.listings.items():
            self._by_asin.setdefault((mp, listing.asin), set()).add((seller, sku))
        self._move_candidates = None

    def touch(self) -> None:
        self.dirty = True

    # --- ids -----------------------------------------------------------------------------------------------------
    def next_id(self) -> int:
        self.store.counter += 1
        return self.store.counter

    # --- notifications ---------------------------------------------------------------------------------------------
    def emit(self, notification_type: str, seller_id: str, marketplace_id: str | None, payload: dict[str, Any]) -> bool:
        """Send a notification to the seller's subscription, if any; whether one went out."""
        subscription = self.store.subscriptions.get((seller_id, notification_type))
        if subscription is None or not subscription.accepts(marketplace_id):
            return False
        destination = self.store.destinations.get(subscription.destination_id)
        if destination is None:
            return False
        message = envelope(
            notification_type,
            payload,
            self.store.tokens.credentials.client_id,
            subscription.subscription_id,
            self.clock.now(),
        )
        subscription.delivered += 1
        self.notification_log.append({"type": notification_type, "arn": destination.arn, "message": message})
        del self.notification_log[:-1000]
        if self.delivery is not None:
            self.delivery.submit(destination.arn, message)
        return True

    # --- listings --------------------------------------------------------------------------------------------------
    def listing(self, seller: str, mp: str, sku: str) -> Listing | None:
        return self.store.listings.get((seller, mp, sku))

    def fba_quantity(self, listing: Listing) -> int | None:
        stock = self.store.fba.get((listing.seller_id, listing.marketplace_id, listing.sku))
        return stock.fulfillable if stock else (0 if listing.fulfillment == "FBA" else None)

    def _store_listing(self, listing: Listing, previous_price: Decimal | None) -> None:
        key = (listing.seller_id, listing.marketplace_id, listing.sku)
        self.store.listings[key] = listing
        members = self._by_asin.setdefault((listing.marketplace_id, listing.asin), set())
        if not members:
            self._move_candidates = None
        members.add((listing.seller_id, listing.sku))
        if listing.fulfillment == "FBA" and key not in self.store.fba:
            self.store.fba[key] = FbaStock(
                listing.seller_id,
                listing.marketplace_id,
                listing.sku,
                listing.asin,
                fnsku(listing.seller_id, listing.sku),
                listing.title,
                0,
                updated=self.clock.now(),
            )
        if listing.price != previous_price:
            now = self.clock.now()
            if listing.price is not None:
                self.market.record_our_price(
                    now,
                    listing.seller_id,
                    listing.marketplace_id,
                    listing.sku,
                    listing.asin,
                    money_str(listing.price, listing.decimals),
                )
            self.offer_changed(listing.marketplace_id, listing.asin, "Internal", now)
        if self.world is not None:
            self.world.listing_changed(listing)
        self.touch()

    def put_listing(
        self,
        seller: str,
        mp: str,
        sku: str,
        product_type: str,
        requirements: str,
        attributes: dict[str, Any],
        preview: bool = False,
        silent: bool = False,
    ) -> tuple[str, list[Issue], str | None]:
        """(status ACCEPTED|INVALID|VALID, issues, asin)."""
        current = self.listing(seller, mp, sku)
        result, new_catalog, issues = evaluate_put(
            current,
            seller,
            mp,
            sku,
            product_type,
            requirements,
            attributes,
            self.store.catalog,
            self.store.gated,
            self.clock.now(),
        )
        if result is None:
            return "INVALID", issues, current.asin if current else None
        if preview:
            return "VALID", issues, result.asin
        if not silent:
            if new_catalog is not None:
                self.store.catalog[new_catalog.asin] = new_catalog
            result.issues = [i for i in issues if i["severity"] != "ERROR"]
            self._store_listing(result, current.price if current else None)
        return "ACCEPTED", issues, result.asin

    def patch_listing(
        self,
        seller: str,
        mp: str,
        sku: str,
        product_type: str,
        patches: list[dict[str, Any]],
        preview: bool = False,
        silent: bool = False,
        require_existing: bool = False,
    ) -> tuple[str, list[Issue]]:
        current = self.listing(seller, mp, sku)
        if current is None and require_existing:
            return "INVALID", [unknown_sku_issue(sku)]
        change, issues = evaluate_patch(current, mp, product_type, patches, self.store.gated)
        if has_errors(issues):
            return "INVALID", issues
        if preview:
            return "VALID", issues
        if current is not None and not silent:
            previous = current.price
            change.apply(current, self.clock.now())
            current.issues = [i for i in issues if i["severity"] != "ERROR"]
            self._store_listing(current, previous)
        # Amazon accepts a patch for an unknown SKU and does nothing with it (models#2797).
        return "ACCEPTED", issues

    def delete_listing(self, seller: str, mp: str, sku: str, silent: bool = False) -> str:
        listing = self.store.listings.get((seller, mp, sku))
        if listing is not None and not silent:
            del self.store.listings[(seller, mp, sku)]
            members = self._by_asin.get((mp, listing.asin), set())
            members.discard((seller, sku))
            if not members:
                self._move_candidates = None
            if self.world is not None:
                self.world.listing_removed(listing)
            self.offer_changed(mp, listing.asin, "Internal")
            self.touch()
        return "ACCEPTED"

    def listing_markets(self) -> set[tuple[str, str]]:
        """(marketplace, ASIN) pairs with at least one seller listing."""
        return {key for key, members in self._by_asin.items() if members}

    def sellers_on(self, mp: str, asin: str) -> set[tuple[str, str]]:
        """(seller, sku) of the listings on this ASIN."""
        return self._by_asin.get((mp, asin), set())

    # --- offers / buy box --------------------------------------------------------------------------------------------
    def featured_offer(self, mp: str, asin: str, offers: list[OfferView]) -> OfferView | None:
        """The Buy Box winner among `offers` (this ASIN's `offers_for`): the market model's award when `--market` is
        on and models this ASIN, else the plain rule of `emulator.pricing.models`."""
        if self.world is not None and (mp, asin) in self.world.model.markets:
            won = self.world.model.winner((mp, asin))
            if won is None:
                return None
            sku = self.world.sku_of((mp, asin), won.seller_id)
            return next((o for o in offers if o.seller_id == won.seller_id and (sku is None or o.sku == sku)), None)
        return buy_box_winner(offers)

    def offers_for(self, mp: str, asin: str) -> list[OfferView]:
        views = [
            OfferView(
                o.seller_id,
                o.price,
                o.shipping,
                o.fulfillment == "FBA",
                False,
                True,
                None,
                o.feedback_rating,
                o.feedback_count,
            )
            for o in self.store.offers.get((mp, asin), [])
        ]
        for seller, sku in sorted(self._by_asin.get((mp, asin), ())):
            listing = self.store.listings.get((seller, mp, sku))
            if listing is None or listing.price is None:
                continue
            quantity = self.fba_quantity(listing) if listing.fulfillment == "FBA" else listing.quantity
            eligible = (quantity or 0) > 0 and not has_errors(listing.issues)
            views.append(
                OfferView(
                    seller, listing.price, listing.shipping, listing.fulfillment == "FBA", True, eligible, sku, 98, 5000
                )
            )
        return views

    def offer_changed(self, mp: str, asin: str, change_type: str, at: float | None = None) -> bool:
        """Emit ANY_OFFER_CHANGED (the change happened at `at`, default now) to every seller with a listing on this
        ASIN, unless the ASIN is outside the market's notified share; whether at least one went out."""
        if not self.market.notified(mp, asin):
            return False
        sellers = {seller for seller, _ in self._by_asin.get((mp, asin), ())}
        if not sellers or not any((s, "ANY_OFFER_CHANGED") in self.store.subscriptions for s in sellers):
            return False
        from emulator.pricing.responses import any_offer_changed_payload

        at = self.clock.now() if at is None else at
        sent = False
        for seller in sorted(sellers):
            payload = any_offer_changed_payload(self, seller, mp, asin, change_type, at)
            sent = self.emit("ANY_OFFER_CHANGED", seller, mp, payload) or sent
        return sent

    def set_competitor_price(
        self,
        mp: str,
        asin: str,
        seller_id: str,
        price: Decimal,
        shipping: Decimal | None = None,
        fulfillment: str | None = None,
    ) -> CompetitorOffer:
        """A competitor's offer changes (or appears): ANY_OFFER_CHANGED External, and an entry in the market's moves."""
        now = self.clock.now()
        offers = self.store.offers.setdefault((mp, asin), [])
        offer = next((o for o in offers if o.seller_id == seller_id), None)
        if offer is None:
            if not offers:
                self._move_candidates = None
            offer = CompetitorOffer(seller_id, price, shipping or Decimal(0), fulfillment or "FBM", now)
            offers.append(offer)
            self.store.catalog.setdefault(asin, CatalogItem(asin, "PRODUCT", asin))
        offer.price = price
        if shipping is not None:
            offer.shipping = shipping
        if fulfillment is not None:
            offer.fulfillment = fulfillment
        offer.observed_at = now
        notified = self.offer_changed(mp, asin, "External", now)
        self.market.record_move(now, mp, asin, seller_id, money_str(price, MARKETPLACES[mp].decimals), notified)
        if self.world is not None:
            self.world.competitor_changed(mp, asin, seller_id, price)
        self.touch()
        return offer

    # --- stock and orders --------------------------------------------------------------------------------------------
    def set_fba_quantity(self, stock: FbaStock, quantity: int) -> None:
        stock.fulfillable = max(0, quantity)
        stock.updated = self.clock.now()
        from emulator.inventory.responses import fba_availability_payload

        self.emit(
            "FBA_INVENTORY_AVAILABILITY_CHANGES",
            stock.seller_id,
            stock.marketplace_id,
            fba_availability_payload(self, stock),
        )
        listing = self.store.listings.get((stock.seller_id, stock.marketplace_id, stock.sku))
        if self.world is not None and listing is not None:
            self.world.listing_changed(listing)
        self.touch()

    def create_order(
        self, seller: str, mp: str, lines: list[tuple[str, int]], notify: bool = True, at: float | None = None
    ) -> Order:
        """A buyer order for (sku, quantity) lines, placed at `at` (default now); stock is reduced (FBM listing
        quantity or FBA fulfillable). `notify=False`: its ORDER_CHANGE never goes out (a deleted subscription, a
        purged queue); the notifications the stock change itself causes (offer, FBA inventory) still do."""
        now = self.clock.now() if at is None else at
        market = MARKETPLACES[mp]
        first = self.store.listings[(seller, mp, lines[0][0])]
        n = self.next_id()
        order_id = f"{100 + n % 900:03d}-{self.rng.randrange(10**7):07d}-{self.rng.randrange(10**7):07d}"
        order = Order(
            order_id,
            seller,
            mp,
            market.currency,
            market.decimals,
            now,
            now,
            "Shipped" if first.fulfillment == "FBA" else "Unshipped",
            "AFN" if first.fulfillment == "FBA" else "MFN",
        )
        for sku, quantity in lines:
            listing = self.store.listings[(seller, mp, sku)]
            unit = listing.price or Decimal(0)
            order.items.append(
                OrderItem(
                    f"{self.rng.randrange(10**13, 10**14)}",
                    sku,
                    listing.asin,
                    listing.title,
                    quantity,
                    unit * quantity,
                    listing.shipping if listing.fulfillment == "FBM" else Decimal(0),
                    quantity if listing.fulfillment == "FBA" else 0,
                )
            )
            if listing.fulfillment == "FBA":
                stock = self.store.fba.get((seller, mp, sku))
                if stock is not None:
                    self.set_fba_quantity(stock, stock.fulfillable - quantity)
            else:
                listing.quantity = max(0, listing.quantity - quantity)
                listing.updated = now
                if self.world is not None:
                    self.world.listing_changed(listing)
            if self.fba_quantity(listing) == 0 or listing.quantity == 0:
                self.offer_changed(mp, listing.asin, "Internal")
        self.store.orders[order_id] = order
        if notify:
            self.order_changed(order, "OrderStatusChange")
        self.touch()
        return order

    def cancel_order(self, order: Order, cancelled_by: str = "BUYER", notify: bool = True) -> None:
        """Cancel an order not yet shipped: status Canceled, last update now (stock is not put back)."""
        if order.status in ("Shipped", "PartiallyShipped", "Canceled"):
            raise ValueError(f"order {order.order_id} is {order.status}")
        order.status = "Canceled"
        order.cancelled_by = cancelled_by
        order.last_update = self.clock.now()
        if notify:
            self.order_changed(order, "OrderStatusChange")
        self.touch()

    def order_changed(self, order: Order, change_type: str) -> None:
        from emulator.orders.responses import order_change_payload

        self.emit("ORDER_CHANGE", order.seller_id, order.marketplace_id, order_change_payload(order, change_type))

    # --- the world moves ------------------------------------------------------------------------------------------
    def start_price_war(self, mp: str, asin: str, step_percent: Decimal, floor_percent: Decimal) -> dict[str, Any]:
        views = self.offers_for(mp, asin)
        if not views:
            raise KeyError(f"no offers on {asin} in {mp}")
        start = min(v.landed for v in views)
        war = {"step": step_percent, "floor": (start * floor_percent / 100), "rounds": 0}
        self.store.price_wars[(mp, asin)] = war
        return {"marketplaceId": mp, "asin": asin, "floor": str(war["floor"])}

    def move_candidates(self) -> list[tuple[str, str]]:
        """(marketplace, ASIN) pairs with competitor offers and at least one seller listing; cached, and rebuilt only
        after a change that can alter it (a first offer or first listing on a pair, the last listing gone)."""
        if self._move_candidates is None:
            self._move_candidates = [
                key for key, offers in self.store.offers.items() if offers and self._by_asin.get(key)
            ]
        return self._move_candidates

    def move_competitor(self) -> tuple[str, str, str, Decimal] | None:
        """One competitor move of the market: a random candidate pair, a random competitor on it, a new price within
        ±5 % (whole minor units, at least one away, never below one). (marketplace, ASIN, seller, price), or None
        when no pair qualifies."""
        candidates = self.move_candidates()
        if not candidates:
            return None
        mp, asin = candidates[self.rng.randrange(len(candidates))]
        offers = self.store.offers[(mp, asin)]
        offer = offers[self.rng.randrange(len(offers))]
        price = quantized_move(offer.price, MARKETPLACES[mp].decimals, self.rng.randint(-500, 500))
        self.set_competitor_price(mp, asin, offer.seller_id, price)
        return mp, asin, offer.seller_id, price

    def world_step(self, orders: int = 1, price_moves: int = 3) -> dict[str, int]:
        """One step of the world: price wars escalate, a few competitor prices drift, a few orders arrive."""
        moved = wars = created = 0
        for (mp, asin), war in list(self.store.price_wars.items()):
            competitors = self.store.offers.get((mp, asin)) or []
            views = self.offers_for(mp, asin)
            if not competitors or not views:
                continue
            lowest = min(v.landed for v in views)
            rival = min(competitors, key=lambda o: o.price + o.shipping)
            decimals = MARKETPLACES[mp].decimals
            target = (lowest * (100 - war["step"]) / 100 - rival.shipping).quantize(Decimal(1).scaleb(-decimals))
            target = max(target, war["floor"].quantize(Decimal(1).scaleb(-decimals)))
            if target < rival.price:
                self.set_competitor_price(mp, asin, rival.seller_id, target)
                war["rounds"] += 1
                wars += 1
        keys = list(self.store.offers)
        for _ in range(min(price_moves, len(keys))):
            mp, asin = keys[self.rng.randrange(len(keys))]
            offers = self.store.offers[(mp, asin)]
            if not offers:
                continue
            offer = offers[self.rng.randrange(len(offers))]
            factor = Decimal(self.rng.randint(95, 105)) / 100
            decimals = MARKETPLACES[mp].decimals
            new_price = max(Decimal(1), (offer.price * factor).quantize(Decimal(1).scaleb(-decimals)))
            self.set_competitor_price(mp, asin, offer.seller_id, new_price)
            moved += 1
        sellable = [
            listing
            for listing in self.store.listings.values()
            if listing.price is not None
            and listing.product_type not in self.store.gated
            and ((self.fba_quantity(listing) or 0) if listing.fulfillment == "FBA" else listing.quantity) > 0
        ]
        for _ in range(min(orders, len(sellable))):
            listing = sellable[self.rng.randrange(len(sellable))]
            available = self.fba_quantity(listing) if listing.fulfillment == "FBA" else listing.quantity
            if available:
                self.create_order(
                    listing.seller_id, listing.marketplace_id, [(listing.sku, min(available, self.rng.randint(1, 2)))]
                )
                created += 1
        return {"priceMoves": moved, "priceWarMoves": wars, "orders": created}

    # --- documents ---------------------------------------------------------------------------------------------------
    def new_document(
        self,
        seller: str,
        content_type: str,
        kind: str = "input",
        content: bytes | None = None,
        compressed: bool = False,
    ) -> FeedDocument:
        region = "na"
        doc_id = f"amzn1.tortuga.4.{region}.{uuid.UUID(int=self.rng.getrandbits(128))}.T{self.next_id()}"
        document = FeedDocument(doc_id, seller, content_type, self.clock.now(), content, compressed, kind)
        self.store.documents[doc_id] = document
        self.touch()
        return document

    def now_iso(self) -> str:
        return iso(self.clock.now())
