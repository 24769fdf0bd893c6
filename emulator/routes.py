"""URL routing as data: every SP-API operation the emulator serves, with its documented default usage plan.

Rates and bursts are the defaults from each operation's "Usage Plan" table in Amazon's models (spapi-facts §4).
`auth` says which LWA token the operation needs: "seller" (refresh_token grant) or "grantless" (client_credentials).
`operation` is Amazon's operationId; where a newer API version reuses an operationId an older one already has here,
the newer one is `<operationId>@<version>` (its own handler, throttling bucket, faults and counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Route", "ROUTES", "match", "ROUTES_BY_OPERATION"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    operation: str
    rate: float
    burst: int
    auth: str = "seller"
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def rate_header(self) -> str:
        """The value of x-amzn-RateLimit-Limit: the applied rate as a decimal string."""
        return repr(float(self.rate))


_R = Route
ROUTES: list[Route] = [
    # Feeds 2021-06-30
    _R("GET", "/feeds/2021-06-30/feeds", "getFeeds", 0.0222, 10),
    _R("POST", "/feeds/2021-06-30/feeds", "createFeed", 0.0083, 15),
    _R("DELETE", "/feeds/2021-06-30/feeds/{feedId}", "cancelFeed", 2, 15),
    _R("GET", "/feeds/2021-06-30/feeds/{feedId}", "getFeed", 2, 15),
    _R("POST", "/feeds/2021-06-30/documents", "createFeedDocument", 0.5, 15),
    _R("GET", "/feeds/2021-06-30/documents/{feedDocumentId}", "getFeedDocument", 0.0222, 10),
    # FBA Inventory v1
    _R("GET", "/fba/inventory/v1/summaries", "getInventorySummaries", 2, 2),
    # Product Pricing v0 and 2022-05-01
    _R("POST", "/batches/products/pricing/v0/itemOffers", "getItemOffersBatch", 0.1, 1),
    _R("POST", "/batches/products/pricing/v0/listingOffers", "getListingOffersBatch", 0.5, 1),
    _R("POST", "/batches/products/pricing/2022-05-01/items/competitiveSummary", "getCompetitiveSummary", 0.033, 1),
    _R(
        "POST",
        "/batches/products/pricing/2022-05-01/offer/featuredOfferExpectedPrice",
        "getFeaturedOfferExpectedPriceBatch",
        0.033,
        1,
    ),
    # Product Fees v0
    _R("POST", "/products/fees/v0/feesEstimate", "getMyFeesEstimates", 0.5, 1),
    # Listings Items 2021-08-01 and Listings Restrictions
    _R("GET", "/listings/2021-08-01/items/{sellerId}/{sku}", "getListingsItem", 5, 10),
    _R("PUT", "/listings/2021-08-01/items/{sellerId}/{sku}", "putListingsItem", 5, 10),
    _R("PATCH", "/listings/2021-08-01/items/{sellerId}/{sku}", "patchListingsItem", 5, 5),
    _R("DELETE", "/listings/2021-08-01/items/{sellerId}/{sku}", "deleteListingsItem", 5, 5),
    _R("GET", "/listings/2021-08-01/restrictions", "getListingsRestrictions", 5, 10),
    # Orders v0
    _R("GET", "/orders/v0/orders", "getOrders", 0.0167, 20),
    _R("GET", "/orders/v0/orders/{orderId}", "getOrder", 0.5, 30),
    _R("GET", "/orders/v0/orders/{orderId}/orderItems", "getOrderItems", 0.5, 30),
    _R("POST", "/orders/v0/orders/{orderId}/shipmentConfirmation", "confirmShipment", 2, 10),
    # Orders 2026-01-01
    _R("GET", "/orders/2026-01-01/orders", "searchOrders", 0.0056, 20),
    _R("GET", "/orders/2026-01-01/orders/{orderId}", "getOrder@2026-01-01", 0.5, 30),
    # Notifications v1
    _R("GET", "/notifications/v1/destinations", "getDestinations", 1, 5, "grantless"),
    _R("POST", "/notifications/v1/destinations", "createDestination", 1, 5, "grantless"),
    _R("GET", "/notifications/v1/destinations/{destinationId}", "getDestination", 1, 5, "grantless"),
    _R("DELETE", "/notifications/v1/destinations/{destinationId}", "deleteDestination", 1, 5, "grantless"),
    _R("GET", "/notifications/v1/subscriptions/{notificationType}", "getSubscription", 1, 5),
    _R("POST", "/notifications/v1/subscriptions/{notificationType}", "createSubscription", 1, 5),
    _R(
        "GET",
        "/notifications/v1/subscriptions/{notificationType}/{subscriptionId}",
        "getSubscriptionById",
        1,
        5,
        "grantless",
    ),
    _R(
        "DELETE",
        "/notifications/v1/subscriptions/{notificationType}/{subscriptionId}",
        "deleteSubscriptionById",
        1,
        5,
        "grantless",
    ),
    # Sellers v1
    _R("GET", "/sellers/v1/marketplaceParticipations", "getMarketplaceParticipations", 0.016, 15),
]

ROUTES_BY_OPERATION: dict[str, Route] = {r.operation: r for r in ROUTES}


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path params, path_known). path_known without a route means the method is not allowed."""
    path_known = False
    for route in ROUTES:
        found = route.pattern.match(path)
        if found:
            path_known = True
            if route.method == method:
                return route, found.groupdict(), True
    return None, {}, path_known
