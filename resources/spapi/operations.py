"""The registry of every SP-API operation this project calls.

Each entry holds the HTTP method, the path template, the documented default usage plan (rate in requests/second and
burst) and the model file it comes from. The defaults are the "Usage Plan" tables in each operation's description in
Amazon's models (`shared/spapi-models/models/<model>.json`); a test cross-checks every entry against them. Amazon may
grant a seller higher limits; the client adopts the rate that `x-amzn-RateLimit-Limit` reports (the header carries no
burst, so the burst always comes from here or from an explicit override).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["Operation", "OPERATIONS", "operation", "NOTIFICATIONS_SCOPE", "FeedLimit", "FEED_SUBMISSION_LIMITS"]

# Scope of grantless tokens for the Notifications API's destination operations (Amazon's ScopeConstants).
NOTIFICATIONS_SCOPE = "sellingpartnerapi::notifications"


@dataclass(frozen=True)
class Operation:
    """One SP-API operation: `name` is Amazon's operationId (unique here), `model` the model file's stem."""

    name: str
    model: str
    method: str
    path: str
    rate: float
    burst: int
    grantless_scope: str | None = None

    def render_path(self, **params: str) -> str:
        """The path with each `{name}` replaced by its value, percent-encoded exactly once (SKUs may hold '/')."""
        path = self.path
        for key, value in params.items():
            placeholder = "{" + key + "}"
            if placeholder not in path:
                raise KeyError(f"{self.name}: path {self.path} has no parameter {key!r}")
            path = path.replace(placeholder, quote(str(value), safe=""))
        if "{" in path:
            raise KeyError(f"{self.name}: missing path parameters in {path}")
        return path


def _op(name: str, model: str, method: str, path: str, rate: float, burst: int, scope: str | None = None) -> Operation:
    return Operation(name, model, method, path, rate, burst, scope)


_FEEDS = "feeds_2021-06-30"
_LISTINGS = "listingsItems_2021-08-01"
_NOTIF = "notifications"

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in [
        # Feeds API 2021-06-30
        _op("createFeedDocument", _FEEDS, "POST", "/feeds/2021-06-30/documents", 0.5, 15),
        _op("createFeed", _FEEDS, "POST", "/feeds/2021-06-30/feeds", 0.0083, 15),
        _op("getFeed", _FEEDS, "GET", "/feeds/2021-06-30/feeds/{feedId}", 2, 15),
        _op("getFeeds", _FEEDS, "GET", "/feeds/2021-06-30/feeds", 0.0222, 10),
        _op("cancelFeed", _FEEDS, "DELETE", "/feeds/2021-06-30/feeds/{feedId}", 2, 15),
        _op("getFeedDocument", _FEEDS, "GET", "/feeds/2021-06-30/documents/{feedDocumentId}", 0.0222, 10),
        # FBA Inventory v1
        _op("getInventorySummaries", "fbaInventory", "GET", "/fba/inventory/v1/summaries", 2, 2),
        # Product Pricing v0 and 2022-05-01
        _op("getItemOffersBatch", "productPricingV0", "POST", "/batches/products/pricing/v0/itemOffers", 0.1, 1),
        _op(
            "getCompetitiveSummary",
            "productPricing_2022-05-01",
            "POST",
            "/batches/products/pricing/2022-05-01/items/competitiveSummary",
            0.033,
            1,
        ),
        _op(
            "getFeaturedOfferExpectedPriceBatch",
            "productPricing_2022-05-01",
            "POST",
            "/batches/products/pricing/2022-05-01/offer/featuredOfferExpectedPrice",
            0.033,
            1,
        ),
        # Product Fees v0
        _op("getMyFeesEstimates", "productFeesV0", "POST", "/products/fees/v0/feesEstimate", 0.5, 1),
        # Listings Items 2021-08-01 and Listings Restrictions
        _op("getListingsItem", _LISTINGS, "GET", "/listings/2021-08-01/items/{sellerId}/{sku}", 5, 10),
        _op("putListingsItem", _LISTINGS, "PUT", "/listings/2021-08-01/items/{sellerId}/{sku}", 5, 10),
        _op("patchListingsItem", _LISTINGS, "PATCH", "/listings/2021-08-01/items/{sellerId}/{sku}", 5, 5),
        _op("deleteListingsItem", _LISTINGS, "DELETE", "/listings/2021-08-01/items/{sellerId}/{sku}", 5, 5),
        _op("searchListingsItems", _LISTINGS, "GET", "/listings/2021-08-01/items/{sellerId}", 5, 5),
        _op(
            "getListingsRestrictions",
            "listingsRestrictions_2021-08-01",
            "GET",
            "/listings/2021-08-01/restrictions",
            5,
            10,
        ),
        # Orders v0 (reads deprecated; migrate by 2027-03-27) and 2026-01-01
        _op("getOrders", "ordersV0", "GET", "/orders/v0/orders", 0.0167, 20),
        _op("getOrder", "ordersV0", "GET", "/orders/v0/orders/{orderId}", 0.5, 30),
        _op("getOrderItems", "ordersV0", "GET", "/orders/v0/orders/{orderId}/orderItems", 0.5, 30),
        _op("confirmShipment", "ordersV0", "POST", "/orders/v0/orders/{orderId}/shipmentConfirmation", 2, 10),
        _op("searchOrders", "orders_2026-01-01", "GET", "/orders/2026-01-01/orders", 0.0056, 20),
        # Notifications v1: destinations are grantless, subscriptions are seller-authorised
        _op("createDestination", _NOTIF, "POST", "/notifications/v1/destinations", 1, 5, NOTIFICATIONS_SCOPE),
        _op("getDestinations", _NOTIF, "GET", "/notifications/v1/destinations", 1, 5, NOTIFICATIONS_SCOPE),
        _op(
            "deleteDestination",
            _NOTIF,
            "DELETE",
            "/notifications/v1/destinations/{destinationId}",
            1,
            5,
            NOTIFICATIONS_SCOPE,
        ),
        _op("createSubscription", _NOTIF, "POST", "/notifications/v1/subscriptions/{notificationType}", 1, 5),
        _op("getSubscription", _NOTIF, "GET", "/notifications/v1/subscriptions/{notificationType}", 1, 5),
        # Sellers
        _op("getMarketplaceParticipations", "sellers", "GET", "/sellers/v1/marketplaceParticipations", 0.016, 15),
    ]
}


@dataclass(frozen=True)
class FeedLimit:
    """A feed type's own submission limit: at most `submissions` createFeed calls of the type per `seconds`."""

    submissions: int
    seconds: float


# Feed types whose submissions Amazon limits on top of createFeed's usage plan, per selling-partner account and region
# (the client keeps them per seller × region × feed type, shared by every process of the machine). JSON_LISTINGS_FEED:
# "5 submissions per 5 minutes per region" since 2025-05-06 (Amazon's changelog "Update feed size and rate limit
# changes for the JSON_LISTINGS_FEED"; createFeed's description in feeds_2021-06-30.json says this limit differs from
# createFeed's own). Amazon documents no such limit for the other feed types.
FEED_SUBMISSION_LIMITS: dict[str, FeedLimit] = {"JSON_LISTINGS_FEED": FeedLimit(submissions=5, seconds=300.0)}


def operation(name: str) -> Operation:
    """The registered operation; KeyError listing the known names otherwise."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown SP-API operation {name!r}; registered: {', '.join(sorted(OPERATIONS))}") from None
