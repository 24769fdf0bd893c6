"""Listings Items 2021-08-01 and Listings Restrictions 2021-08-01: parse, call the state, render."""

from __future__ import annotations

import uuid
from typing import Any

from emulator.exceptions import InvalidInput, NotFound, Unauthorized
from emulator.listings.models import has_errors, render_item
from emulator.wire import Request, Response
from seller.marketplaces import MARKETPLACES

GET_INCLUDED = {
    "summaries",
    "attributes",
    "issues",
    "offers",
    "fulfillmentAvailability",
    "procurement",
    "relationships",
    "productTypes",
}


def _marketplace(req: Request) -> str:
    ids = req.q_list("marketplaceIds", required=True)
    if len(ids) != 1:
        raise InvalidInput("Exactly one marketplace id is supported in 'marketplaceIds'.")
    mp = ids[0]
    if mp not in MARKETPLACES:
        raise InvalidInput(f"Invalid marketplace id '{mp}'.")
    if mp not in req.state.store.marketplaces(req.params["sellerId"]):
        raise Unauthorized()
    return mp


def _seller(req: Request) -> str:
    seller = req.params["sellerId"]
    if seller != req.seller_id and seller not in req.state.store.sellers:
        raise Unauthorized()
    return seller


def get_listings_item(req: Request) -> Response:
    seller = _seller(req)
    mp = _marketplace(req)
    included = req.q_list("includedData") or ["summaries"]
    unknown = [i for i in included if i not in GET_INCLUDED]
    if unknown:
        raise InvalidInput(f"Invalid includedData value(s): {', '.join(unknown)}.")
    listing = req.state.listing(seller, mp, req.params["sku"])
    if listing is None:
        raise NotFound(f"SKU '{req.params['sku']}' not found in marketplace {mp}", code="NOT_FOUND")
    return Response(200, render_item(listing, included, req.state.fba_quantity(listing)))


def _submission(req: Request, status: str, issues: list[dict[str, Any]], asin: str | None, mp: str) -> Response:
    body: dict[str, Any] = {
        "sku": req.params["sku"],
        "status": status,
        "submissionId": uuid.uuid4().hex,
        "issues": issues,
    }
    included = req.q_list("includedData") or ["issues"]
    if "identifiers" in included and req.q("mode") == "VALIDATION_PREVIEW" and asin:
        body["identifiers"] = [{"marketplaceId": mp, "asin": asin}]
    if "issues" not in included:
        body.pop("issues")
    return Response(200, body)


def _mode(req: Request) -> bool:
    mode = req.q("mode")
    if mode not in (None, "VALIDATION_PREVIEW"):
        raise InvalidInput(f"Invalid mode '{mode}'.")
    return mode == "VALIDATION_PREVIEW"


def put_listings_item(req: Request) -> Response:
    seller = _seller(req)
    mp = _marketplace(req)
    preview = _mode(req)
    body = req.json_object()
    product_type = body.get("productType")
    attributes = body.get("attributes")
    requirements = body.get("requirements", "LISTING")
    if not isinstance(product_type, str) or not product_type or not isinstance(attributes, dict):
        raise InvalidInput("'productType' and 'attributes' are required.")
    if requirements not in ("LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY"):
        raise InvalidInput(f"Invalid requirements '{requirements}'.")
    silent = req.state.faults_take_silent(req.operation)
    status, issues, asin = req.state.put_listing(
        seller, mp, req.params["sku"], product_type, requirements, attributes, preview=preview, silent=silent
    )
    return _submission(req, status, issues, asin, mp)


def patch_listings_item(req: Request) -> Response:
    seller = _seller(req)
    mp = _marketplace(req)
    preview = _mode(req)
    body = req.json_object()
    product_type = body.get("productType")
    patches = body.get("patches")
    if not isinstance(product_type, str) or not product_type or not isinstance(patches, list) or not patches:
        raise InvalidInput("'productType' and a non-empty 'patches' array are required.")
    for patch in patches:
        if (
            not isinstance(patch, dict)
            or patch.get("op") not in ("add", "replace", "merge", "delete")
            or not (isinstance(patch.get("path"), str))
        ):
            raise InvalidInput("Each patch needs 'op' (add|replace|merge|delete) and 'path'.")
        if "value" in patch and not isinstance(patch["value"], list):
            raise InvalidInput("A patch 'value' must be an array.")
    silent = req.state.faults_take_silent(req.operation)
    status, issues = req.state.patch_listing(
        seller, mp, req.params["sku"], product_type, patches, preview=preview, silent=silent
    )
    listing = req.state.listing(seller, mp, req.params["sku"])
    return _submission(req, status, issues, listing.asin if listing else None, mp)


def delete_listings_item(req: Request) -> Response:
    seller = _seller(req)
    mp = _marketplace(req)
    silent = req.state.faults_take_silent(req.operation)
    status = req.state.delete_listing(seller, mp, req.params["sku"], silent=silent)
    return _submission(req, status, [], None, mp)


# Each marketplace's own Seller Central host (Amazon's "Seller Central URLs" page), where its approvals are requested.
SELLER_CENTRAL = {
    "US": "sellercentral.amazon.com",
    "CA": "sellercentral.amazon.ca",
    "MX": "sellercentral.amazon.com.mx",
    "BR": "sellercentral.amazon.com.br",
    "IE": "sellercentral.amazon.ie",
    "ES": "sellercentral.amazon.es",
    "UK": "sellercentral.amazon.co.uk",
    "FR": "sellercentral.amazon.fr",
    "BE": "sellercentral.amazon.com.be",
    "NL": "sellercentral.amazon.nl",
    "DE": "sellercentral.amazon.de",
    "IT": "sellercentral.amazon.it",
    "SE": "sellercentral.amazon.se",
    "ZA": "sellercentral.amazon.co.za",
    "PL": "sellercentral.amazon.pl",
    "EG": "sellercentral.amazon.eg",
    "TR": "sellercentral.amazon.com.tr",
    "SA": "sellercentral.amazon.sa",
    "AE": "sellercentral.amazon.ae",
    "IN": "sellercentral.amazon.in",
    "SG": "sellercentral.amazon.sg",
    "AU": "sellercentral.amazon.com.au",
    "JP": "sellercentral.amazon.co.jp",
}


def get_listings_restrictions(req: Request) -> Response:
    asin = req.q("asin", required=True)
    seller = req.q("sellerId", required=True)
    marketplaces = req.q_list("marketplaceIds", required=True)
    condition = req.q("conditionType")
    product_type = req.q("productType")
    if seller != req.seller_id and seller not in req.state.store.sellers:
        raise Unauthorized()
    for mp in marketplaces:
        if mp not in MARKETPLACES:
            raise InvalidInput(f"Invalid marketplace id '{mp}'.")
    item = req.state.store.catalog.get(asin)
    restrictions = []
    for mp in marketplaces:
        reasons: list[dict[str, Any]] = []
        if item is None:
            reasons.append({"message": f"ASIN {asin} was not found in the catalog.", "reasonCode": "ASIN_NOT_FOUND"})
        elif item.product_type in req.state.store.gated or product_type in req.state.store.gated:
            domain = SELLER_CENTRAL[MARKETPLACES[mp].country]
            reasons.append(
                {
                    "message": f"You need approval to list in the '{item.product_type}' category.",
                    "reasonCode": "APPROVAL_REQUIRED",
                    "links": [
                        {
                            "resource": f"https://{domain}/hz/approvalrequest/restrictions/approve?asin={asin}",
                            "verb": "GET",
                            "title": "Request Approval via Seller Central.",
                            "type": "text/html",
                        }
                    ],
                }
            )
        if reasons:
            entry: dict[str, Any] = {"marketplaceId": mp, "reasons": reasons}
            if condition:
                entry["conditionType"] = condition
            restrictions.append(entry)
    return Response(200, {"restrictions": restrictions})


HANDLERS = {
    "getListingsItem": get_listings_item,
    "putListingsItem": put_listings_item,
    "patchListingsItem": patch_listings_item,
    "deleteListingsItem": delete_listings_item,
    "getListingsRestrictions": get_listings_restrictions,
}
__all__ = ["HANDLERS", "has_errors"]
