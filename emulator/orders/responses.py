"""Orders v0: getOrders, getOrder, getOrderItems and confirmShipment; and the ORDER_CHANGE payload."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from emulator.clock import iso, parse_iso
from emulator.exceptions import InvalidInput, NotFound
from emulator.orders.models import Order, render_item, render_order
from emulator.sellers.models import sales_channel
from emulator.wire import Request, Response

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
}
