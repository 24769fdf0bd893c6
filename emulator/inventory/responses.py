"""FBA Inventory v1: getInventorySummaries, and the FBA_INVENTORY_AVAILABILITY_CHANGES payload."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from emulator.clock import parse_iso
from emulator.exceptions import InvalidInput
from emulator.inventory.models import FbaStock, render_summary
from emulator.wire import Request, Response

if TYPE_CHECKING:
    from emulator.state import EmulatorState

PAGE_SIZE = 50
TOKEN_LIFETIME = 30.0  # nextToken expires 30 seconds after creation


def get_inventory_summaries(req: Request) -> Response:
    if req.q("granularityType", required=True) != "Marketplace":
        raise InvalidInput("granularityType must be 'Marketplace'.")
    mp = req.q("granularityId", required=True)
    marketplaces = req.q_list("marketplaceIds", required=True)
    if marketplaces != [mp]:
        raise InvalidInput("marketplaceIds must hold exactly the granularityId marketplace.")
    if mp not in req.state.store.marketplaces(req.seller_id):
        raise InvalidInput(f"Invalid marketplace id '{mp}'.")
    details = req.q_bool("details")
    now = req.state.clock.now()
    start_raw = req.q("startDateTime")
    try:
        start = parse_iso(start_raw) if start_raw else None
    except ValueError:
        raise InvalidInput("startDateTime must be an ISO 8601 date-time.") from None
    if start is not None and start < now - 18 * 31 * 86400:
        raise InvalidInput("startDateTime cannot be more than 18 months in the past.")
    offset = 0
    token = req.q("nextToken")
    if token:
        try:
            spec = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            offset, issued = int(spec["offset"]), float(spec["issued"])
        except (ValueError, KeyError):
            raise InvalidInput("Invalid nextToken.") from None
        if now > issued + TOKEN_LIFETIME:
            raise InvalidInput("The nextToken has expired; nextToken is valid for 30 seconds.")
    skus = req.q_list("sellerSkus")
    if len(skus) > 50:
        raise InvalidInput("sellerSkus accepts at most 50 SKUs.")
    single = req.q("sellerSku")
    if not skus and single:
        skus = [single]
    stocks = [s for (seller, m, _), s in sorted(req.state.store.fba.items()) if seller == req.seller_id and m == mp]
    if start is not None:  # startDateTime overrides SKU filters
        stocks = [s for s in stocks if s.updated >= start]
    elif skus:
        wanted = set(skus)
        stocks = [s for s in stocks if s.sku in wanted]
    page = stocks[offset : offset + PAGE_SIZE]
    body: dict[str, Any] = {
        "payload": {
            "granularity": {"granularityType": "Marketplace", "granularityId": mp},
            "inventorySummaries": [render_summary(s, details) for s in page],
        }
    }
    if offset + PAGE_SIZE < len(stocks):
        next_token = base64.urlsafe_b64encode(json.dumps({"offset": offset + PAGE_SIZE, "issued": now}).encode())
        body["pagination"] = {"nextToken": next_token.decode()}
    return Response(200, body)


def fba_availability_payload(state: EmulatorState, stock: FbaStock) -> dict[str, Any]:
    return {
        "SellerId": stock.seller_id,
        "FNSKU": stock.fnsku,
        "ASIN": stock.asin,
        "SKU": stock.sku,
        "FulfillmentInventoryByMarketplace": [
            {
                "MarketplaceId": stock.marketplace_id,
                "ItemName": stock.product_name,
                "FulfillmentInventory": {
                    "Fulfillable": stock.fulfillable,
                    "Unfulfillable": stock.unfulfillable,
                    "ReservedQuantityBreakdown": {
                        "WarehouseProcessing": 0,
                        "WarehouseTransfer": 0,
                        "PendingCustomerOrder": stock.reserved_customer_orders,
                    },
                    "Researching": 0,
                    "InboundQuantityBreakdown": {
                        "Working": stock.inbound_working,
                        "Shipped": stock.inbound_shipped,
                        "Receiving": stock.inbound_receiving,
                    },
                    "FutureSupplyBuyable": 0,
                    "PendingCustomerOrderInTransit": 0,
                },
            }
        ],
    }


HANDLERS = {"getInventorySummaries": get_inventory_summaries}
