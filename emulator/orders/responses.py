"""Orders v0 (getOrders, getOrder, getOrderItems, confirmShipment), Orders 2026-01-01 (searchOrders, getOrder) and
the ORDER_CHANGE payload."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from emulator.clock import iso, parse_iso
from emulator.exceptions import InvalidInput, NotFound
from emulator.orders.models import (
    FULFILLMENT_STATUS,
    INCLUDED_DATA,
    Order,
    render_item,
    render_order,
    render_order_2026,
)
from emulator.sellers.models import sales_channel
from emulator.wire import Request, Response
from seller.marketplaces import MARKETPLACES

STATUSES = {
    "PendingAvailability",
    "Pending",
    "Unshipped",
    "PartiallyShipped",
    "Shipped",
    "InvoiceUnconfirmed",
    "Canceled",
    "Unfulfillable",
}
ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")


def _order(req: Request) -> Order:
    order = req.state.store.orders.get(req.params["orderId"])
    if order is None or order.seller_id != req.seller_id:
        raise NotFound(f"Order {req.params['orderId']} not found.")
    return order


def get_orders(req: Request) -> Response:
    token = req.q("NextToken")
    now = req.state.clock.now()
    if token:
        try:
            spec = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise InvalidInput("Invalid NextToken.") from None
    else:
        marketplaces = req.q_list("MarketplaceIds", required=True)
        if len(marketplaces) > 50:
            raise InvalidInput("MarketplaceIds accepts at most 50 ids.")
        created, updated = req.q("CreatedAfter"), req.q("LastUpdatedAfter")
        if (created is None) == (updated is None):
            raise InvalidInput("Exactly one of CreatedAfter or LastUpdatedAfter is required.")
        try:
            after = parse_iso(created or updated)
            before_raw = req.q("CreatedBefore") or req.q("LastUpdatedBefore")
            before = parse_iso(before_raw) if before_raw else now
        except ValueError:
            raise InvalidInput("Dates must be ISO 8601.") from None
        statuses = req.q_list("OrderStatuses")
        if any(s not in STATUSES for s in statuses):
            raise InvalidInput("Invalid OrderStatuses value.")
        channels = req.q_list("FulfillmentChannels")
        if any(c not in ("AFN", "MFN") for c in channels):
            raise InvalidInput("FulfillmentChannels must be AFN or MFN.")
        spec = {
            "mps": marketplaces,
            "field": "created" if created else "updated",
            "after": after,
            "before": before,
            "statuses": statuses,
            "channels": channels,
            "ids": req.q_list("AmazonOrderIds"),
            "size": req.q_int("MaxResultsPerPage", 100, 1, 100),
            "offset": 0,
        }
    orders = [
        o
        for o in sorted(req.state.store.orders.values(), key=lambda o: (o.purchase_date, o.order_id))
        if o.seller_id == req.seller_id
        and o.marketplace_id in spec["mps"]
        and spec["after"] <= (o.purchase_date if spec["field"] == "created" else o.last_update) <= spec["before"]
        and (not spec["statuses"] or o.status in spec["statuses"])
        and (not spec["channels"] or o.fulfillment_channel in spec["channels"])
        and (not spec["ids"] or o.order_id in spec["ids"])
    ]
    start, size = spec["offset"], spec["size"]
    payload: dict[str, Any] = {
        "Orders": [render_order(o, sales_channel(o.marketplace_id)) for o in orders[start : start + size]]
    }
    payload["CreatedBefore" if spec["field"] == "created" else "LastUpdatedBefore"] = iso(spec["before"])
    if start + size < len(orders):
        payload["NextToken"] = base64.urlsafe_b64encode(json.dumps({**spec, "offset": start + size}).encode()).decode()
    return Response(200, {"payload": payload})


def get_order(req: Request) -> Response:
    order = _order(req)
    return Response(200, {"payload": render_order(order, sales_channel(order.marketplace_id))})


def get_order_items(req: Request) -> Response:
    order = _order(req)
    return Response(
        200, {"payload": {"AmazonOrderId": order.order_id, "OrderItems": [render_item(order, i) for i in order.items]}}
    )


def confirm_shipment(req: Request) -> Response:
    order = _order(req)
    body = req.json_object()
    package = body.get("packageDetail")
    if body.get("marketplaceId") != order.marketplace_id or not isinstance(package, dict):
        raise InvalidInput("'marketplaceId' (the order's) and 'packageDetail' are required.")
    for key in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems"):
        if not package.get(key):
            raise InvalidInput(f"'packageDetail.{key}' is required.")
    if not str(package["packageReferenceId"]).isdigit() or int(package["packageReferenceId"]) <= 0:
        raise InvalidInput("'packageReferenceId' must be a positive numeric string.")
    if package["carrierCode"] == "Other" and not package.get("carrierName"):
        raise InvalidInput("'carrierName' is required when carrierCode is Other.")
    try:
        parse_iso(str(package["shipDate"]))
        if "T" not in str(package["shipDate"]):
            raise ValueError
    except ValueError:
        raise InvalidInput("Invalid Input", code="InvalidInput", details="shipDate must be ISO 8601") from None
    if order.fulfillment_channel != "MFN":
        raise InvalidInput(f"Order {order.order_id} is fulfilled by Amazon; only MFN orders can be confirmed.")
    if order.status in ("Canceled", "Shipped"):
        raise InvalidInput(f"Order {order.order_id} is {order.status}.")
    items = {i.order_item_id: i for i in order.items}
    lines = package["orderItems"]
    if not isinstance(lines, list):
        raise InvalidInput("'orderItems' must be an array.")
    for line in lines:
        item = items.get(str(line.get("orderItemId"))) if isinstance(line, dict) else None
        quantity = line.get("quantity") if isinstance(line, dict) else None
        if item is None or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(f"Invalid order item in shipment: {line}.")
        if item.quantity_shipped + quantity > item.quantity:
            raise InvalidInput(f"Order item {item.order_item_id}: more units confirmed than ordered.")
    for line in lines:
        items[str(line["orderItemId"])].quantity_shipped += line["quantity"]
    order.shipments.append(package)
    done = all(i.quantity_shipped >= i.quantity for i in order.items)
    order.status = "Shipped" if done else "PartiallyShipped"
    order.last_update = req.state.clock.now()
    req.state.touch()
    req.state.order_changed(order, "OrderStatusChange")
    return Response(204, None)


# --- Orders 2026-01-01 -----------------------------------------------------------------------------------------------
PAGINATION_TOKEN_TTL = 24 * 3600.0  # "Pagination: token handling with 24-hour expiration" (migration guide)
BEFORE_MARGIN = 120.0  # createdBefore / lastUpdatedBefore must be at least two minutes before the request (model)
FULFILLED_BY = {"MERCHANT": "MFN", "AMAZON": "AFN"}


def _included_data(req: Request) -> frozenset[str]:
    values = req.q_list("includedData")
    unknown = sorted(set(values) - INCLUDED_DATA)
    if unknown:
        raise InvalidInput(f"Invalid includedData value(s): {', '.join(unknown)}.")
    return frozenset(values)


def _encode_token(spec: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(spec, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str, now: float) -> dict[str, Any]:
    try:
        spec = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()).decode())
        if not isinstance(spec, dict) or spec.get("v") != "2026-01-01":
            raise ValueError
        issued = float(spec["issued"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("Invalid paginationToken.") from None
    if now - issued > PAGINATION_TOKEN_TTL:
        raise InvalidInput("The paginationToken has expired.")
    return spec


def _search_spec(req: Request, now: float) -> dict[str, Any]:
    created_after, created_before = req.q("createdAfter"), req.q("createdBefore")
    updated_after, updated_before = req.q("lastUpdatedAfter"), req.q("lastUpdatedBefore")
    if (created_after is None) == (updated_after is None):
        raise InvalidInput("Exactly one of createdAfter or lastUpdatedAfter is required.")
    if created_after is not None and updated_before is not None:
        raise InvalidInput("lastUpdatedBefore cannot be combined with createdAfter.")
    if updated_after is not None and created_before is not None:
        raise InvalidInput("createdBefore cannot be combined with lastUpdatedAfter.")
    after_raw, before_raw = (created_after, created_before) if created_after else (updated_after, updated_before)
    try:
        after = parse_iso(str(after_raw))
        before = parse_iso(before_raw) if before_raw else now
    except ValueError:
        raise InvalidInput("Dates must be in ISO 8601 format.") from None
    if before_raw is not None and before > now - BEFORE_MARGIN:
        name = "createdBefore" if created_after else "lastUpdatedBefore"
        raise InvalidInput(f"{name} must be at least two minutes before the time of the request.")
    if before < after:
        raise InvalidInput("The end of the time range must be equal to or after its start.")
    marketplaces = req.q_list("marketplaceIds")
    if len(marketplaces) > 50:
        raise InvalidInput("marketplaceIds accepts at most 50 values.")
    unknown = [m for m in marketplaces if m not in MARKETPLACES]
    if unknown:
        raise InvalidInput(f"Invalid marketplaceIds value(s): {', '.join(unknown)}.")
    statuses = req.q_list("fulfillmentStatuses")
    if any(s not in FULFILLMENT_STATUS.values() for s in statuses):
        raise InvalidInput("Invalid fulfillmentStatuses value.")
    fulfilled_by = req.q_list("fulfilledBy")
    if any(f not in FULFILLED_BY for f in fulfilled_by):
        raise InvalidInput("fulfilledBy must be MERCHANT or AMAZON.")
    return {
        "v": "2026-01-01",
        "field": "created" if created_after else "updated",
        "after": after,
        "before": before,
        "mps": marketplaces,
        "statuses": statuses,
        "channels": [FULFILLED_BY[f] for f in fulfilled_by],
        "size": req.q_int("maxResultsPerPage", 100, 1, 100),
        "cursor": None,  # (purchase_date, order_id) of the last order already returned
        "issued": now,
    }


def search_orders(req: Request) -> Response:
    now = req.state.clock.now()
    token = req.q("paginationToken")
    # Clients send the original filters again with the token; the token alone decides the page (and, when the
    # request names none, the datasets included).
    spec = _decode_token(token, now) if token else _search_spec(req, now)
    included = _included_data(req) if req.q_list("includedData") else frozenset(spec.get("included", ()))
    cursor = tuple(spec["cursor"]) if spec["cursor"] else None
    orders = [
        o
        for o in sorted(req.state.store.orders.values(), key=lambda o: (o.purchase_date, o.order_id))
        if o.seller_id == req.seller_id
        and (cursor is None or (o.purchase_date, o.order_id) > cursor)
        and (not spec["mps"] or o.marketplace_id in spec["mps"])
        and spec["after"] <= (o.purchase_date if spec["field"] == "created" else o.last_update) <= spec["before"]
        and (not spec["statuses"] or FULFILLMENT_STATUS[o.status] in spec["statuses"])
        and (not spec["channels"] or o.fulfillment_channel in spec["channels"])
    ]
    page = orders[: spec["size"]]
    body: dict[str, Any] = {
        "orders": [render_order_2026(o, sales_channel(o.marketplace_id), included) for o in page],
    }
    if len(orders) > len(page):
        last = page[-1]
        following = {**spec, "cursor": [last.purchase_date, last.order_id], "included": sorted(included)}
        body["pagination"] = {"nextToken": _encode_token(following)}
    body["createdBefore" if spec["field"] == "created" else "lastUpdatedBefore"] = iso(spec["before"])
    return Response(200, body)


def get_order_2026(req: Request) -> Response:
    included = _included_data(req)
    if not ORDER_ID.match(req.params["orderId"]):
        raise InvalidInput(f"Invalid orderId {req.params['orderId']}.")
    order = _order(req)
    return Response(200, {"order": render_order_2026(order, sales_channel(order.marketplace_id), included)})


def order_change_payload(order: Order, change_type: str) -> dict[str, Any]:
    return {
        "OrderChangeNotification": {
            "NotificationLevel": "OrderLevel",
            "SellerId": order.seller_id,
            "AmazonOrderId": order.order_id,
            "OrderChangeType": change_type,
            "OrderChangeTrigger": {"TimeOfOrderChange": iso(order.last_update), "ChangeReason": "Order status changed"},
            "Summary": {
                "MarketplaceId": order.marketplace_id,
                "OrderStatus": order.status,
                "PurchaseDate": iso(order.purchase_date),
                "DestinationPostalCode": "98101",
                "FulfillmentType": order.fulfillment_channel,
                "OrderType": "StandardOrder",
                "OrderPrograms": [],
                "ShippingPrograms": [],
                "OrderItems": [
                    {
                        "OrderItemId": i.order_item_id,
                        "SellerSKU": i.sku,
                        "SupplySourceId": "DEFAULT",
                        "Quantity": i.quantity,
                    }
                    for i in order.items
                ],
            },
        }
    }


HANDLERS = {
    "getOrders": get_orders,
    "getOrder": get_order,
    "getOrderItems": get_order_items,
    "confirmShipment": confirm_shipment,
    "searchOrders": search_orders,
    "getOrder@2026-01-01": get_order_2026,
}
