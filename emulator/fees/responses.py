"""Product Fees v0 getMyFeesEstimates: a bare JSON array of up to 20 FeesEstimateByIdRequest in, one
FeesEstimateResult per item out, each with its own Status (a bad item fails alone). Figures: `emulator.fees.models`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from emulator.clock import iso
from emulator.exceptions import InvalidInput
from emulator.fees.models import estimate
from emulator.wire import Request, Response
from seller.marketplaces import MARKETPLACES

BATCH = 20


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"CurrencyCode": currency, "Amount": amount}


def _fee(fee_type: str, amount: Decimal, currency: str) -> dict[str, Any]:
    zero = _money(Decimal(0).quantize(amount), currency)
    return {
        "FeeType": fee_type,
        "FeeAmount": _money(amount, currency),
        "FeePromotion": zero,
        "TaxAmount": zero,
        "FinalFee": _money(amount, currency),
    }


class _ItemError(Exception):
    def __init__(self, message: str, code: str = "InvalidParameterValue") -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _amount(money: Any, currency: str, name: str) -> Decimal:
    if not isinstance(money, dict):
        raise _ItemError(f"{name} is required.")
    if money.get("CurrencyCode") != currency:
        raise _ItemError(f"{name}.CurrencyCode must be {currency} for this marketplace.")
    amount = money.get("Amount")
    if not isinstance(amount, Decimal | int) or isinstance(amount, bool) or amount < 0:
        raise _ItemError(f"{name}.Amount must be a non-negative number.")
    return Decimal(amount)


def _result(req: Request, item: Any) -> dict[str, Any]:
    item = item if isinstance(item, dict) else {}
    fer = item.get("FeesEstimateRequest") if isinstance(item.get("FeesEstimateRequest"), dict) else {}
    mp = fer.get("MarketplaceId")
    fba = fer.get("IsAmazonFulfilled") is True
    prices = fer.get("PriceToEstimateFees")
    identifier: dict[str, Any] = {
        "MarketplaceId": mp,
        "SellerId": req.seller_id,
        "IdType": item.get("IdType"),
        "IdValue": item.get("IdValue"),
        "IsAmazonFulfilled": fba,
        "SellerInputIdentifier": fer.get("Identifier"),
    }
    if isinstance(prices, dict):
        identifier["PriceToEstimateFees"] = prices
    try:
        if item.get("IdType") not in ("ASIN", "SellerSKU") or not isinstance(item.get("IdValue"), str):
            raise _ItemError("IdType must be ASIN or SellerSKU, with an IdValue.")
        if not isinstance(fer.get("Identifier"), str) or not fer["Identifier"]:
            raise _ItemError("FeesEstimateRequest.Identifier is required.")
        market = MARKETPLACES[mp]
        if not isinstance(prices, dict):
            raise _ItemError("PriceToEstimateFees is required.")
        price = _amount(prices.get("ListingPrice"), market.currency, "ListingPrice")
        if prices.get("Shipping") is not None:
            price += _amount(prices.get("Shipping"), market.currency, "Shipping")
        if item["IdType"] == "SellerSKU":
            listing = req.state.listing(req.seller_id, mp, item["IdValue"])
            if listing is None:
                raise _ItemError(f"The seller SKU {item['IdValue']} is not listed in marketplace {mp}.")
            asin, product_type = listing.asin, listing.product_type
        else:
            catalog = req.state.store.catalog.get(item["IdValue"])
            if catalog is None:
                raise _ItemError(f"ASIN {item['IdValue']} is not valid for marketplace {mp}.")
            asin, product_type = catalog.asin, catalog.product_type
    except _ItemError as exc:
        return {
            "Status": "ClientError",
            "FeesEstimateIdentifier": identifier,
            "Error": {"Type": "Sender", "Code": exc.code, "Message": exc.message, "Detail": []},
        }
    fees = estimate(product_type, asin, price, fba, market.decimals)
    details = [_fee("ReferralFee", fees.referral, market.currency)]
    details.append(_fee("VariableClosingFee", fees.closing, market.currency))
    details.append(_fee("PerItemFee", Decimal(0).quantize(fees.referral), market.currency))
    if fba:
        details.append(_fee("FBAFees", fees.fba, market.currency))
    return {
        "Status": "Success",
        "FeesEstimateIdentifier": identifier,
        "FeesEstimate": {
            "TimeOfFeesEstimation": iso(req.state.clock.now()),
            "TotalFeesEstimate": _money(fees.total, market.currency),
            "FeeDetailList": details,
        },
    }


def get_my_fees_estimates(req: Request) -> Response:
    items = req.json()
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH:
        raise InvalidInput(f"The request body must be an array of 1 to {BATCH} FeesEstimateByIdRequest.")
    for item in items:
        fer = item.get("FeesEstimateRequest") if isinstance(item, dict) else None
        if not isinstance(fer, dict) or fer.get("MarketplaceId") not in MARKETPLACES:
            raise InvalidInput("Incorrect Marketplace identifier.")
    return Response(200, [_result(req, item) for item in items])


HANDLERS = {"getMyFeesEstimates": get_my_fees_estimates}
