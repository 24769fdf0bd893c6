"""Product Pricing v0 (getItemOffersBatch, getListingOffersBatch) and 2022-05-01 (getCompetitiveSummary,
getFeaturedOfferExpectedPriceBatch), built from the offers the emulator holds. Money: v0 `{CurrencyCode, Amount}`
and 2022-05-01 `{currencyCode, amount}` with a JSON number amount rendered from the stored Decimal."""

from __future__ import annotations

import re
from decimal import Decimal
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from emulator.clock import iso, iso_ms
from emulator.exceptions import InvalidInput
from emulator.pricing.models import OfferView, rank_key
from emulator.wire import Request, Response
from seller.marketplaces import MARKETPLACES

if TYPE_CHECKING:
    from emulator.state import EmulatorState

ITEM_URI = re.compile(r"^/products/pricing/v0/items/([^/]+)/offers$")
LISTING_URI = re.compile(r"^/products/pricing/v0/listings/([^/]+)/offers$")
CONDITIONS = {"New", "Used", "Collectible", "Refurbished", "Club"}


def _v0_money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"CurrencyCode": currency, "Amount": amount}


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"currencyCode": currency, "amount": amount}


def _status(code: int) -> dict[str, Any]:
    return {"statusCode": code, "reasonPhrase": {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(code, "Error")}


def _headers(req: Request) -> dict[str, str]:
    return {"x-amzn-RequestId": req.request_id, "Date": formatdate(usegmt=True)}


def get_offers_result(state: EmulatorState, seller: str, mp: str, asin: str, sku: str | None) -> dict[str, Any]:
    currency = MARKETPLACES[mp].currency
    offers = sorted(state.offers_for(mp, asin), key=rank_key)
    winner = state.featured_offer(mp, asin, offers)
    counts: dict[str, int] = {}
    lowest: dict[str, OfferView] = {}
    for offer in offers:
        channel = "Amazon" if offer.fba else "Merchant"
        counts[channel] = counts.get(channel, 0) + 1
        if channel not in lowest:
            lowest[channel] = offer
    summary: dict[str, Any] = {
        "TotalOfferCount": len(offers),
        "NumberOfOffers": [{"condition": "new", "fulfillmentChannel": c, "OfferCount": n} for c, n in counts.items()],
        "LowestPrices": [
            {
                "condition": "new",
                "fulfillmentChannel": c,
                "LandedPrice": _v0_money(o.landed, currency),
                "ListingPrice": _v0_money(o.price, currency),
                "Shipping": _v0_money(o.shipping, currency),
            }
            for c, o in lowest.items()
        ],
        "BuyBoxEligibleOffers": [
            {
                "condition": "new",
                "fulfillmentChannel": c,
                "OfferCount": sum(1 for o in offers if o.eligible and ("Amazon" if o.fba else "Merchant") == c),
            }
            for c in counts
        ],
    }
    if winner is not None:
        summary["BuyBoxPrices"] = [
            {
                "condition": "New",
                "LandedPrice": _v0_money(winner.landed, currency),
                "ListingPrice": _v0_money(winner.price, currency),
                "Shipping": _v0_money(winner.shipping, currency),
                "sellerId": winner.seller_id,
            }
        ]
        summary["CompetitivePriceThreshold"] = _v0_money(winner.landed, currency)
    summary["OffersAvailableTime"] = iso(state.clock.now())
    rendered = []
    for offer in offers[:20]:
        rendered.append(
            {
                "MyOffer": offer.seller_id == seller,
                "SubCondition": "new",
                "SellerId": offer.seller_id,
                "SellerFeedbackRating": {
                    "SellerPositiveFeedbackRating": float(offer.feedback_rating),
                    "FeedbackCount": offer.feedback_count,
                },
                "ShippingTime": {
                    "minimumHours": 0 if offer.fba else 24,
                    "maximumHours": 24 if offer.fba else 48,
                    "availabilityType": "NOW",
                },
                "ListingPrice": _v0_money(offer.price, currency),
                "Shipping": _v0_money(offer.shipping, currency),
                "IsFulfilledByAmazon": offer.fba,
                "PrimeInformation": {"IsPrime": offer.fba, "IsNationalPrime": offer.fba},
                "IsBuyBoxWinner": winner is not None and offer is winner,
                "IsFeaturedMerchant": offer.eligible,
            }
        )
    identifier: dict[str, Any] = {"MarketplaceId": mp, "ASIN": asin, "ItemCondition": "New"}
    result: dict[str, Any] = {
        "marketplaceId": mp,
        "ASIN": asin,
        "ItemCondition": "New",
        "status": "Success",
        "Identifier": identifier,
        "Summary": summary,
        "Offers": rendered,
    }
    if sku:
        identifier["SellerSKU"] = sku
        result["SKU"] = sku
    return result


def _batch_requests(req: Request, limit: int) -> list[dict[str, Any]]:
    body = req.json_object()
    requests = body.get("requests")
    if not isinstance(requests, list) or not 1 <= len(requests) <= limit:
        raise InvalidInput(f"'requests' must hold 1 to {limit} requests.")
    if not all(isinstance(r, dict) for r in requests):
        raise InvalidInput("Each request must be an object.")
    return requests


def _offers_item(req: Request, item: dict[str, Any], listing_mode: bool) -> dict[str, Any]:
    uri = str(item.get("uri", ""))
    mp = item.get("MarketplaceId")
    condition = item.get("ItemCondition")
    customer = item.get("CustomerType")
    found = (LISTING_URI if listing_mode else ITEM_URI).match(uri)
    key = unquote(found.group(1)) if found else None
    request: dict[str, Any] = {"MarketplaceId": mp, "ItemCondition": condition}
    if customer:
        request["CustomerType"] = customer
    request["SellerSKU" if listing_mode else "Asin"] = key or ""
    headers = _headers(req)

    def error(status: int, code: str, message: str) -> dict[str, Any]:
        return {
            "status": _status(status),
            "headers": headers,
            "request": request,
            "body": {"errors": [{"code": code, "message": message}]},
        }

    if found is None or item.get("method") != "GET":
        return error(400, "InvalidInput", f"Invalid uri or method: {item.get('method')} {uri}")
    if mp not in MARKETPLACES or condition not in CONDITIONS:
        return error(400, "InvalidInput", "Invalid MarketplaceId or ItemCondition.")
    if listing_mode:
        listing = req.state.listing(req.seller_id, mp, key)
        if listing is None:
            return error(404, "NotFound", f"SKU '{key}' not found in marketplace {mp}.")
        asin, sku = listing.asin, key
    else:
        asin, sku = key, None
        if asin not in req.state.store.catalog:
            return error(400, "InvalidInput", f"ASIN {asin} is not valid for marketplace {mp}.")
    payload = get_offers_result(req.state, req.seller_id, mp, asin, sku)
    if condition != "New":
        payload.update(Offers=[], Summary={"TotalOfferCount": 0})
        payload["ItemCondition"] = payload["Identifier"]["ItemCondition"] = condition
    return {"status": _status(200), "headers": headers, "request": request, "body": {"payload": payload}}


def get_item_offers_batch(req: Request) -> Response:
    return Response(200, {"responses": [_offers_item(req, r, False) for r in _batch_requests(req, 20)]})


def get_listing_offers_batch(req: Request) -> Response:
    return Response(200, {"responses": [_offers_item(req, r, True) for r in _batch_requests(req, 20)]})


# --- 2022-05-01 -------------------------------------------------------------------------------------------------------
def _offer_2022(offer: OfferView, currency: str) -> dict[str, Any]:
    return {
        "sellerId": offer.seller_id,
        "condition": "New",
        "subCondition": "New",
        "fulfillmentType": "AFN" if offer.fba else "MFN",
        "listingPrice": _money(offer.price, currency),
        "shippingOptions": [{"shippingOptionType": "DEFAULT", "price": _money(offer.shipping, currency)}],
        "primeDetails": {"eligibility": "NATIONAL" if offer.fba else "NONE"},
    }


def get_competitive_summary(req: Request) -> Response:
    responses = []
    for item in _batch_requests(req, 20):
        asin, mp = item.get("asin"), item.get("marketplaceId")
        included = item.get("includedData") or []
        body: dict[str, Any] = {"asin": str(asin or ""), "marketplaceId": str(mp or "")}
        if (
            mp not in MARKETPLACES
            or not isinstance(included, list)
            or not included
            or item.get("method") != "GET"
            or item.get("uri") != "/products/pricing/2022-05-01/items/competitiveSummary"
        ):
            body["errors"] = [
                {"code": "InvalidInput", "message": "Invalid marketplaceId, includedData, method or uri."}
            ]
            responses.append({"status": _status(400), "body": body})
            continue
        if asin not in req.state.store.catalog:
            body["errors"] = [{"code": "INVALID_ASIN", "message": f"ASIN {asin} is not valid for marketplace {mp}."}]
            responses.append({"status": _status(400), "body": body})
            continue
        currency = MARKETPLACES[mp].currency
        offers = sorted(req.state.offers_for(mp, asin), key=rank_key)
        winner = req.state.featured_offer(mp, asin, offers)
        if "featuredBuyingOptions" in included:
            segmented = []
            if winner is not None:
                segmented.append(
                    {
                        **_offer_2022(winner, currency),
                        "featuredOfferSegments": [
                            {"customerMembership": "DEFAULT", "segmentDetails": {"glanceViewWeightPercentage": 100}}
                        ],
                    }
                )
            body["featuredBuyingOptions"] = [{"buyingOptionType": "New", "segmentedFeaturedOffers": segmented}]
        if "lowestPricedOffers" in included:
            inputs = item.get("lowestPricedOffersInputs") or [{"itemCondition": "New", "offerType": "Consumer"}]
            body["lowestPricedOffers"] = [
                {
                    "lowestPricedOffersInput": spec,
                    "offers": [_offer_2022(o, currency) for o in offers[:20]]
                    if spec.get("itemCondition") == "New"
                    else [],
                }
                for spec in inputs
                if isinstance(spec, dict)
            ]
        if "referencePrices" in included:
            body["referencePrices"] = (
                [{"name": "CompetitivePriceThreshold", "price": _money(winner.landed, currency)}] if winner else []
            )
        if "similarItems" in included:
            body["similarItems"] = []
        responses.append({"status": _status(200), "body": body})
    return Response(200, {"responses": responses})


def get_featured_offer_expected_price_batch(req: Request) -> Response:
    responses = []
    for item in _batch_requests(req, 40):
        mp, sku = item.get("marketplaceId"), item.get("sku")
        request = {"marketplaceId": str(mp or ""), "sku": str(sku or "")}
        headers = _headers(req)
        if mp not in MARKETPLACES or not isinstance(sku, str) or item.get("method") != "GET":
            responses.append(
                {
                    "status": _status(400),
                    "headers": headers,
                    "request": request,
                    "body": {"errors": [{"code": "InvalidInput", "message": "Invalid request."}]},
                }
            )
            continue
        listing = req.state.listing(req.seller_id, mp, sku)
        if listing is None:
            responses.append(
                {
                    "status": _status(404),
                    "headers": headers,
                    "request": request,
                    "body": {"errors": [{"code": "INVALID_SKU", "message": f"SKU {sku} not found."}]},
                }
            )
            continue
        responses.append(
            {"status": _status(200), "headers": headers, "request": request, "body": _foep_body(req.state, listing)}
        )
    return Response(200, {"responses": responses})


def _featured(offer: OfferView, mp: str, asin: str, currency: str) -> dict[str, Any]:
    identifier: dict[str, Any] = {
        "marketplaceId": mp,
        "asin": asin,
        "sellerId": offer.seller_id,
        "fulfillmentType": "AFN" if offer.fba else "MFN",
    }
    if offer.sku:
        identifier["sku"] = offer.sku
    return {
        "offerIdentifier": identifier,
        "condition": "New",
        "price": {"listingPrice": _money(offer.price, currency), "shippingPrice": _money(offer.shipping, currency)},
    }


def _foep_body(state: EmulatorState, listing: Any) -> dict[str, Any]:
    """FOEP: the highest listing price at which our offer would win under the Buy Box rule."""
    mp, asin, currency = listing.marketplace_id, listing.asin, listing.currency
    offers = state.offers_for(mp, asin)
    mine = next((o for o in offers if o.mine and o.sku == listing.sku), None)
    competitors = [o for o in offers if not o.mine and o.eligible]
    fba = listing.fulfillment == "FBA"
    identifier = {
        "marketplaceId": mp,
        "asin": asin,
        "sellerId": listing.seller_id,
        "sku": listing.sku,
        "fulfillmentType": "AFN" if fba else "MFN",
    }
    body: dict[str, Any] = {"offerIdentifier": identifier}
    winner = state.featured_offer(mp, asin, offers)
    result: dict[str, Any]
    if listing.product_type in state.store.gated:
        result = {"resultStatus": "OFFER_NOT_ELIGIBLE"}
    elif not competitors:
        result = {"resultStatus": "NO_COMPETING_OFFER"}
    else:
        best = min(competitors, key=rank_key)
        unit = Decimal(1).scaleb(-listing.decimals)
        # we win a tie when we are FBA and the best competitor is not (FBA preferred on ties)
        target = best.landed - listing.shipping - (Decimal(0) if fba and not best.fba else unit)
        result = {
            "resultStatus": "VALID_FOEP",
            "featuredOfferExpectedPrice": {"listingPrice": _money(max(target, unit), currency)},
            "competingFeaturedOffer": _featured(best, mp, asin, currency),
        }
    if winner is not None:
        result["currentFeaturedOffer"] = _featured(winner, mp, asin, currency)
    del mine
    body["featuredOfferExpectedPriceResults"] = [result]
    return body


def any_offer_changed_payload(
    state: EmulatorState, seller: str, mp: str, asin: str, change_type: str, at: float
) -> dict[str, Any]:
    """The ANY_OFFER_CHANGED payload (PascalCase, as AnyOfferChangedNotification.json requires) for a change that
    happened at `at` (emulated epoch seconds): the top 20 offers and the Summary, lowest prices per fulfillment
    channel."""
    currency = MARKETPLACES[mp].currency
    offers = sorted(state.offers_for(mp, asin), key=rank_key)
    winner = state.featured_offer(mp, asin, offers)
    reference = winner.landed if winner else (offers[0].landed if offers else Decimal(0))
    counts: dict[str, int] = {}
    lowest: dict[str, OfferView] = {}
    for offer in offers:
        channel = "Amazon" if offer.fba else "Merchant"
        counts[channel] = counts.get(channel, 0) + 1
        lowest.setdefault(channel, offer)

    def price_block(o: OfferView) -> dict[str, Any]:
        return {
            "LandedPrice": _v0_money(o.landed, currency),
            "ListingPrice": _v0_money(o.price, currency),
            "Shipping": _v0_money(o.shipping, currency),
        }

    summary: dict[str, Any] = {
        "NumberOfOffers": [{"Condition": "new", "FulfillmentChannel": c, "OfferCount": n} for c, n in counts.items()],
        "LowestPrices": [{"Condition": "new", "FulfillmentChannel": c, **price_block(o)} for c, o in lowest.items()],
        "BuyBoxPrices": [] if winner is None else [{"Condition": "new", **price_block(winner)}],
        "ListPrice": _v0_money(reference, currency),
        "MinimumAdvertisedPrice": _v0_money(reference, currency),
        "SuggestedLowerPricePlusShipping": _v0_money(reference, currency),
        "CompetitivePriceThreshold": _v0_money(reference, currency),
        "TotalBuyBoxEligibleOffers": sum(1 for o in offers if o.eligible),
        "SalesRankings": [],
        "NumberOfBuyBoxEligibleOffers": [
            {
                "Condition": "new",
                "FulfillmentChannel": c,
                "OfferCount": sum(1 for o in offers if o.eligible and ("Amazon" if o.fba else "Merchant") == c),
            }
            for c in counts
        ],
    }
    now = iso(state.clock.now())
    country = MARKETPLACES[mp].country.replace("UK", "GB")
    return {
        "AnyOfferChangedNotification": {
            "SellerId": seller,
            "OfferChangeTrigger": {
                "MarketplaceId": mp,
                "ASIN": asin,
                "ItemCondition": "new",
                "TimeOfOfferChange": iso_ms(at),
                "OfferChangeType": change_type,
            },
            "Summary": summary,
            "Offers": [
                {
                    "SellerId": o.seller_id,
                    "SubCondition": "new",
                    "SellerFeedbackRating": {
                        "SellerPositiveFeedbackRating": o.feedback_rating,
                        "FeedbackCount": o.feedback_count,
                    },
                    "ShippingTime": {
                        "MinimumHours": 0 if o.fba else 24,
                        "MaximumHours": 24 if o.fba else 48,
                        "AvailabilityType": "NOW",
                        "AvailableDate": now,
                    },
                    "ListingPrice": _v0_money(o.price, currency),
                    "Points": {"PointsNumber": 0},
                    "Shipping": _v0_money(o.shipping, currency),
                    "ShipsFrom": {"Country": country, "State": ""},
                    "IsFulfilledByAmazon": o.fba,
                    "IsBuyBoxWinner": winner is not None and o is winner,
                    "PrimeInformation": {"IsOfferPrime": o.fba, "IsOfferNationalPrime": o.fba},
                    "IsExpeditedShippingAvailable": o.fba,
                    "IsFeaturedMerchant": o.eligible,
                    "ShipsDomestically": True,
                    "ShipsInternationally": False,
                }
                for o in offers[:20]
            ],
        }
    }


HANDLERS = {
    "getItemOffersBatch": get_item_offers_batch,
    "getListingOffersBatch": get_listing_offers_batch,
    "getCompetitiveSummary": get_competitive_summary,
    "getFeaturedOfferExpectedPriceBatch": get_featured_offer_expected_price_batch,
}
