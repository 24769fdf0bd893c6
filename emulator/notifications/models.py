"""Notifications v1: destinations, subscriptions, Amazon's notification envelopes, and delivery to SQS (no HTTP).

Delivery: the message body is the notification JSON itself (no SNS envelope). ORDER_CHANGE, ANY_OFFER_CHANGED and
FBA_INVENTORY_AVAILABILITY_CHANGES use PascalCase keys; FEED_PROCESSING_FINISHED uses camelCase (spapi-facts §11).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import iso
from emulator.jsonutil import dumps

__all__ = ["Destination", "Subscription", "envelope", "SqsDelivery", "SUPPORTED_TYPES"]

log = logging.getLogger("emulator.notifications")

SUPPORTED_TYPES = {
    "ORDER_CHANGE": "1.0",
    "ANY_OFFER_CHANGED": "1.0",
    "FBA_INVENTORY_AVAILABILITY_CHANGES": "1.0",
    "FEED_PROCESSING_FINISHED": "2020-09-04",
}
CAMEL_CASE = {"FEED_PROCESSING_FINISHED"}


@dataclass
class Destination:
    destination_id: str
    name: str
    arn: str

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "destinationId": self.destination_id, "resource": {"sqs": {"arn": self.arn}}}


@dataclass
class Subscription:
    subscription_id: str
    notification_type: str
    seller_id: str
    payload_version: str
    destination_id: str
    processing_directive: dict[str, Any] | None = None
    delivered: int = 0

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subscriptionId": self.subscription_id,
            "payloadVersion": self.payload_version,
            "destinationId": self.destination_id,
        }
        if self.processing_directive:
            out["processingDirective"] = self.processing_directive
        return out

    def accepts(self, marketplace_id: str | None) -> bool:
        event_filter = (self.processing_directive or {}).get("eventFilter") or {}
        wanted = event_filter.get("marketplaceIds")
        return not wanted or marketplace_id is None or marketplace_id in wanted


def envelope(
    notification_type: str, payload: dict[str, Any], application_id: str, subscription_id: str, now: float
) -> dict[str, Any]:
    version = SUPPORTED_TYPES[notification_type]
    metadata_id = str(uuid.uuid4())
    if notification_type in CAMEL_CASE:
        return {
            "notificationVersion": version,
            "notificationType": notification_type,
            "payloadVersion": version,
            "eventTime": iso(now),
            "payload": payload,
            "notificationMetadata": {
                "applicationId": application_id,
                "subscriptionId": subscription_id,
                "publishTime": iso(now),
                "notificationId": metadata_id,
            },
        }
    body: dict[str, Any] = {
        "NotificationVersion": version,
        "NotificationType": notification_type,
        "PayloadVersion": version,
        "EventTime": iso(now),
        "Payload": payload,
    }
    if notification_type != "FBA_INVENTORY_AVAILABILITY_CHANGES":  # its schema declares no metadata
        body["NotificationMetadata"] = {
            "ApplicationId": application_id,
            "SubscriptionId": subscription_id,
            "PublishTime": iso(now),
            "NotificationId": metadata_id,
        }
    return body


@dataclass
class SqsDelivery:
    """Sends messages to SQS queues (by ARN) at `endpoint` from one background thread, in order."""

    endpoint: str
    region: str = "us-east-1"
    sent: int = 0
    failed: int = 0
    _queue: queue.Queue = field(default_factory=queue.Queue, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _urls: dict[str, str] = field(default_factory=dict, repr=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spapi-emulator-sqs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, arn: str, message: dict[str, Any]) -> None:
        self._queue.put((arn, dumps(message).decode("utf-8")))

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _client(self, region: str) -> Any:
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _run(self) -> None:
        clients: dict[str, Any] = {}
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            # Send what is already waiting for the same queue together (SendMessageBatch takes up to 10).
            batch, control = [item], None
            while len(batch) < 10:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None or isinstance(more, threading.Event) or more[0] != item[0]:
                    control = more
                    break
                batch.append(more)
            self._send(clients, item[0], [body for _, body in batch])
            if control is None:
                continue
            if isinstance(control, tuple):
                self._send(clients, control[0], [control[1]])
            elif isinstance(control, threading.Event):
                control.set()
            else:
                return

    def _send(self, clients: dict[str, Any], arn: str, bodies: list[str]) -> None:
        try:
            _, _, _, region, account, name = arn.split(":", 5)
            client = clients.get(region) or clients.setdefault(region, self._client(region))
            url = self._urls.get(arn)
            if url is None:
                url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
                self._urls[arn] = url
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)]
            result = client.send_message_batch(QueueUrl=url, Entries=entries)
            self.sent += len(result.get("Successful", []))
            self.failed += len(result.get("Failed", []))
        except Exception as exc:  # delivery is best effort, as Amazon's is; log and keep going
            self.failed += len(bodies)
            log.warning("SQS delivery to %s failed: %s", arn, exc)
