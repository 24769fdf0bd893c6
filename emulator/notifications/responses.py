"""Notifications v1: destinations (grantless) and subscriptions (seller)."""

from __future__ import annotations

import re
import uuid

from emulator.exceptions import Conflict, InvalidInput, NotFound
from emulator.notifications.models import SUPPORTED_TYPES, Destination, Subscription
from emulator.wire import Request, Response

ARN = re.compile(r"^arn:aws:sqs:\S+:\S+:\S+")


def _type(req: Request) -> str:
    notification_type = req.params["notificationType"]
    if notification_type not in SUPPORTED_TYPES:
        raise InvalidInput(
            f"Notification type {notification_type} is not supported by the emulator "
            f"(supported: {', '.join(sorted(SUPPORTED_TYPES))})."
        )
    return notification_type


def create_destination(req: Request) -> Response:
    body = req.json_object()
    name = body.get("name")
    spec = body.get("resourceSpecification")
    arn = ((spec or {}).get("sqs") or {}).get("arn") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name or not isinstance(arn, str) or not ARN.match(arn):
        raise InvalidInput("'name' and resourceSpecification.sqs.arn (arn:aws:sqs:region:account:queue) are required.")
    store = req.state.store
    if any(d.arn == arn for d in store.destinations.values()):
        raise Conflict(f"A destination for {arn} already exists.")
    destination = Destination(str(uuid.uuid4()), name, arn)
    store.destinations[destination.destination_id] = destination
    req.state.touch()
    return Response(200, {"payload": destination.render()})


def get_destinations(req: Request) -> Response:
    return Response(200, {"payload": [d.render() for d in req.state.store.destinations.values()]})


def get_destination(req: Request) -> Response:
    destination = req.state.store.destinations.get(req.params["destinationId"])
    if destination is None:
        raise NotFound(f"Destination {req.params['destinationId']} not found.")
    return Response(200, {"payload": destination.render()})


def delete_destination(req: Request) -> Response:
    store = req.state.store
    if req.params["destinationId"] not in store.destinations:
        raise NotFound(f"Destination {req.params['destinationId']} not found.")
    if any(s.destination_id == req.params["destinationId"] for s in store.subscriptions.values()):
        raise Conflict("The destination has subscriptions; delete them first.")
    del store.destinations[req.params["destinationId"]]
    req.state.touch()
    return Response(200, {})


def create_subscription(req: Request) -> Response:
    notification_type = _type(req)
    body = req.json_object()
    version = body.get("payloadVersion")
    destination_id = body.get("destinationId")
    directive = body.get("processingDirective")
    if not isinstance(version, str) or not isinstance(destination_id, str):
        raise InvalidInput("'payloadVersion' and 'destinationId' are required.")
    if version != SUPPORTED_TYPES[notification_type]:
        raise InvalidInput(f"payloadVersion for {notification_type} must be {SUPPORTED_TYPES[notification_type]}.")
    if destination_id not in req.state.store.destinations:
        raise InvalidInput(f"Destination {destination_id} does not exist.")
    if directive is not None and not isinstance(directive, dict):
        raise InvalidInput("'processingDirective' must be an object.")
    key = (req.seller_id, notification_type)
    if key in req.state.store.subscriptions:
        raise Conflict(f"A subscription for {notification_type} already exists.")
    subscription = Subscription(str(uuid.uuid4()), notification_type, req.seller_id, version, destination_id, directive)
    req.state.store.subscriptions[key] = subscription
    req.state.touch()
    return Response(200, {"payload": subscription.render()})


def get_subscription(req: Request) -> Response:
    subscription = req.state.store.subscriptions.get((req.seller_id, _type(req)))
    if subscription is None:
        raise NotFound(f"No subscription for {req.params['notificationType']}.")
    return Response(200, {"payload": subscription.render()})


def _by_id(req: Request) -> tuple[tuple[str, str], Subscription]:
    notification_type = _type(req)
    for key, subscription in req.state.store.subscriptions.items():
        if key[1] == notification_type and subscription.subscription_id == req.params["subscriptionId"]:
            return key, subscription
    raise NotFound(f"Subscription {req.params['subscriptionId']} not found.")


def get_subscription_by_id(req: Request) -> Response:
    return Response(200, {"payload": _by_id(req)[1].render()})


def delete_subscription_by_id(req: Request) -> Response:
    key, _ = _by_id(req)
    del req.state.store.subscriptions[key]
    req.state.touch()
    return Response(200, {})


HANDLERS = {
    "createDestination": create_destination,
    "getDestinations": get_destinations,
    "getDestination": get_destination,
    "deleteDestination": delete_destination,
    "createSubscription": create_subscription,
    "getSubscription": get_subscription,
    "getSubscriptionById": get_subscription_by_id,
    "deleteSubscriptionById": delete_subscription_by_id,
}
