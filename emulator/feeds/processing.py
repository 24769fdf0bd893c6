"""Feed processing: the lifecycle IN_QUEUE → IN_PROGRESS → DONE|FATAL|CANCELLED, JSON_LISTINGS_FEED validation and
application with its processing report, and the legacy flat-file types (FATAL unless legacy mode is on)."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.feeds.models import LEGACY_FLAT_FILE_TYPES, REMOVED_TYPES, Feed
from emulator.jsonutil import dumps, loads
from emulator.listings.models import render_item
from seller.marketplaces import MARKETPLACES

if TYPE_CHECKING:
    from emulator.state import EmulatorState

__all__ = ["advance_feeds", "FeedSchema", "models_dir"]

log = logging.getLogger("emulator.feeds")
MAX_MESSAGES = 25_000


def models_dir() -> Path:
    """`shared/spapi-models` beside the checkout, or $SPAPI_MODELS_DIR."""
    override = os.environ.get("SPAPI_MODELS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "spapi-models"


class FeedSchema:
    """Validates a JSON_LISTINGS_FEED document with Amazon's schema when present, else structurally (logged)."""

    _instance: FeedSchema | None = None

    def __init__(self) -> None:
        path = models_dir() / "schemas" / "feeds" / "listings-feed-schema-v2.json"
        self.validator = None
        if path.exists():
            import jsonschema

            schema = json.loads(path.read_text(encoding="utf-8"))
            self.validator = jsonschema.Draft7Validator(schema)
        else:
            log.warning("%s not found: validating JSON_LISTINGS_FEED with the emulator's structural checks", path)

    @classmethod
    def get(cls) -> FeedSchema:
        if cls._instance is None:
            cls._instance = FeedSchema()
        return cls._instance

    def errors(self, doc: Any) -> list[tuple[int | None, str]]:
        """[(message index or None, problem)] — empty when the document is valid."""
        problems = _structural(doc)
        if self.validator is not None and not problems:
            for error in self.validator.iter_errors(_as_json(doc)):
                path = list(error.absolute_path)
                index = path[1] if len(path) > 1 and path[0] == "messages" and isinstance(path[1], int) else None
                where = "/".join(str(p) for p in path) or "document"
                problems.append((index, f"{where}: {error.message}"))
                if len(problems) >= 100:
                    break
        return problems


def _as_json(doc: Any) -> Any:
    """jsonschema treats Decimal as a number only when it is an int/float; convert for validation."""
    return json.loads(dumps(doc))


def _structural(doc: Any) -> list[tuple[int | None, str]]:
    if not isinstance(doc, dict):
        return [(None, "document: the feed must be a JSON object")]
    problems: list[tuple[int | None, str]] = []
    header = doc.get("header")
    if not isinstance(header, dict) or not isinstance(header.get("sellerId"), str):
        problems.append((None, "header: 'sellerId' is required"))
    elif header.get("version") != "2.0":
        problems.append((None, "header/version: must be '2.0'"))
    messages = doc.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        problems.append((None, f"messages: 1..{MAX_MESSAGES} messages are required"))
        return problems
    seen: set[int] = set()
    allowed = {
        "UPDATE": ({"productType", "attributes"}, {"patches"}),
        "PARTIAL_UPDATE": ({"productType", "attributes"}, {"patches", "requirements"}),
        "PATCH": ({"productType", "patches"}, {"attributes", "requirements"}),
        "DELETE": (set(), {"productType", "attributes", "patches", "requirements"}),
    }
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append((index, f"messages/{index}: must be an object"))
            continue
        message_id = message.get("messageId")
        if isinstance(message_id, bool) or not isinstance(message_id, int) or not 1 <= message_id <= 2147483647:
            problems.append((index, f"messages/{index}/messageId: an integer 1..2147483647 is required"))
        elif message_id in seen:
            problems.append((index, f"messages/{index}/messageId: {message_id} is not unique in the feed"))
        else:
            seen.add(message_id)
        if not isinstance(message.get("sku"), str) or not message.get("sku"):
            problems.append((index, f"messages/{index}/sku: a non-empty string is required"))
        operation = message.get("operationType")
        if operation not in allowed:
            problems.append((index, f"messages/{index}/operationType: must be one of {sorted(allowed)}"))
            continue
        required, forbidden = allowed[operation]
        for key in sorted(required - message.keys()):
            problems.append((index, f"messages/{index}: '{key}' is required for {operation}"))
        for key in sorted(forbidden & message.keys()):
            problems.append((index, f"messages/{index}: '{key}' is not allowed for {operation}"))
        if len(problems) >= 100:
            break
    return problems


# --- lifecycle -------------------------------------------------------------------------------------------------------
def advance_feeds(state: EmulatorState, step_seconds: float, legacy: bool) -> None:
    """Move every feed as far along its lifecycle as the clock allows. Caller holds state.lock."""
    now = state.clock.now()
    for feed in sorted(state.store.feeds.values(), key=lambda f: f.created):
        if feed.status == "IN_QUEUE":
            if feed.stuck or now < feed.created + step_seconds:
                continue
            busy = any(
                other.status == "IN_PROGRESS"
                and other.seller_id == feed.seller_id
                and other.feed_type == feed.feed_type
                for other in state.store.feeds.values()
            )
            if busy:
                continue
            feed.status = "IN_PROGRESS"
            feed.started = now
            _process(state, feed, legacy)
            state.touch()
        if feed.status == "IN_PROGRESS" and now >= (feed.started or now) + step_seconds:
            feed.status = feed.outcome or "FATAL"
            feed.ended = now
            state.touch()
            payload: dict[str, Any] = {
                "sellerId": feed.seller_id,
                "accountId": feed.seller_id,
                "feedId": feed.feed_id,
                "feedType": feed.feed_type,
                "processingStatus": feed.status,
            }
            if feed.result_document_id:
                payload["resultFeedDocumentId"] = feed.result_document_id
            state.emit(
                "FEED_PROCESSING_FINISHED", feed.seller_id, None, {"feedProcessingFinishedNotification": payload}
            )


def _store_result(state: EmulatorState, feed: Feed, content: bytes, content_type: str) -> None:
    document = state.new_document(feed.seller_id, content_type, "result", gzip.compress(content, 6), compressed=True)
    feed.result_document_id = document.document_id


def _process(state: EmulatorState, feed: Feed, legacy: bool) -> None:
    if feed.force_fatal:
        feed.outcome = "FATAL"
        return
    document = state.store.documents.get(feed.input_document_id)
    data = document.content if document is not None else None
    if feed.feed_type in REMOVED_TYPES and not (legacy and feed.feed_type in LEGACY_FLAT_FILE_TYPES):
        feed.outcome = "FATAL"  # removed on 2025-07-31: getFeed shows FATAL, no report
        return
    if data is None:
        feed.outcome = "FATAL"
        return
    if feed.feed_type == "JSON_LISTINGS_FEED":
        outcome, report = process_json_listings(state, feed, data)
        feed.outcome = outcome
        _store_result(state, feed, dumps(report), "application/json; charset=UTF-8")
    elif feed.feed_type in LEGACY_FLAT_FILE_TYPES:
        charset = (
            document.content_type.lower().split("charset=")[-1].strip()
            if "charset=" in document.content_type.lower()
            else "utf-8"
        )
        report_text, report_charset = process_flat_file(state, feed, data, charset)
        feed.outcome = "DONE"
        _store_result(
            state, feed, report_text.encode(report_charset, "replace"), f"text/plain; charset={report_charset}"
        )
    else:
        feed.outcome = "FATAL"


# --- JSON_LISTINGS_FEED ----------------------------------------------------------------------------------------------
def _feed_issue(message: str, code: str = "4000001", message_id: int | None = None, sku: str | None = None) -> dict:
    out: dict[str, Any] = {"code": code, "severity": "ERROR", "message": message}
    if message_id is not None:
        out["messageId"] = message_id
    if sku:
        out["sku"] = sku
    return out


def _summary(errors: int = 0, warnings: int = 0, processed: int = 0, accepted: int = 0, invalid: int = 0) -> dict:
    return {
        "errors": errors,
        "warnings": warnings,
        "messagesProcessed": processed,
        "messagesAccepted": accepted,
        "messagesInvalid": invalid,
    }


def process_json_listings(state: EmulatorState, feed: Feed, data: bytes) -> tuple[str, dict[str, Any]]:
    header = {"sellerId": feed.seller_id, "version": "2.0", "feedId": feed.feed_id}
    try:
        doc = loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        issue = _feed_issue(f"The feed is not valid JSON: {exc}", "4000002")
        return "FATAL", {"header": header, "issues": [issue], "summary": _summary(errors=1)}
    problems = FeedSchema.get().errors(doc)
    if not problems and doc["header"]["sellerId"] != feed.seller_id:
        problems = [(None, f"header/sellerId: {doc['header']['sellerId']!r} does not match the seller of the feed")]
    if problems:
        messages = doc.get("messages") if isinstance(doc, dict) and isinstance(doc.get("messages"), list) else []
        issues = []
        for index, text in problems:
            message = messages[index] if index is not None and index < len(messages) else {}
            message_id = message.get("messageId") if isinstance(message, dict) else None
            valid_id = isinstance(message_id, int) and not isinstance(message_id, bool) and message_id >= 1
            sku = message.get("sku") if isinstance(message, dict) and isinstance(message.get("sku"), str) else None
            issues.append(
                _feed_issue(
                    f"Feed does not match the JSON_LISTINGS_FEED schema: {text}",
                    "4002005",
                    message_id if valid_id else None,
                    sku or None,
                )
            )
        return "FATAL", {"header": header, "issues": issues, "summary": _summary(errors=len(issues))}
    report_spec = doc["header"].get("report")
    if report_spec:
        header["report"] = report_spec
    issues: list[dict[str, Any]] = []
    accepted = invalid = 0
    items: list[dict[str, Any]] = []
    for message in doc["messages"]:
        message_issues: list[dict[str, Any]] = []
        for mp in feed.marketplace_ids:
            message_issues.extend(_apply_message(state, feed, mp, message))
        if any(i["severity"] == "ERROR" for i in message_issues):
            invalid += 1
        else:
            accepted += 1
            if report_spec:
                listing = state.listing(feed.seller_id, feed.marketplace_ids[0], message["sku"])
                if listing is not None:
                    items.append(render_item(listing, report_spec["includedData"], state.fba_quantity(listing)))
        for raw in message_issues:
            entry: dict[str, Any] = {
                "messageId": message["messageId"],
                "sku": message["sku"],
                "code": raw["code"],
                "severity": raw["severity"],
                "message": raw["message"],
            }
            if raw.get("attributeNames"):
                entry["attributeName"] = raw["attributeNames"][0]
            issues.append(entry)
    summary = _summary(
        errors=sum(1 for i in issues if i["severity"] == "ERROR"),
        warnings=sum(1 for i in issues if i["severity"] == "WARNING"),
        processed=len(doc["messages"]),
        accepted=accepted,
        invalid=invalid,
    )
    report: dict[str, Any] = {"header": header, "issues": issues, "summary": summary}
    if report_spec:
        report["items"] = items
        summary["itemSummary"] = {"items": len(items), "errors": 0, "warnings": 0}
    return "DONE", report


def _apply_message(state: EmulatorState, feed: Feed, mp: str, message: dict[str, Any]) -> list[dict[str, Any]]:
    sku = message["sku"]
    operation = message["operationType"]
    seller = feed.seller_id
    silent = feed.silent
    if operation == "DELETE":
        state.delete_listing(seller, mp, sku, silent=silent)
        return []
    if operation == "UPDATE":
        _, issues, _ = state.put_listing(
            seller,
            mp,
            sku,
            message["productType"],
            message.get("requirements", "LISTING"),
            message["attributes"],
            silent=silent,
        )
        return issues
    if operation == "PARTIAL_UPDATE":
        patches = [
            {"op": "replace", "path": f"/attributes/{name}", "value": value}
            for name, value in message["attributes"].items()
        ]
    else:
        patches = message["patches"]
    _, issues = state.patch_listing(
        seller, mp, sku, message["productType"], patches, silent=silent, require_existing=True
    )
    return issues


# --- legacy flat files ---------------------------------------------------------------------------------------------
FLAT_COLUMNS = {
    "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA": {
        "sku",
        "price",
        "minimum-seller-allowed-price",
        "maximum-seller-allowed-price",
        "quantity",
        "handling-time",
        "fulfillment-channel",
    },
    "POST_FLAT_FILE_INVLOADER_DATA": {
        "sku",
        "product-id",
        "product-id-type",
        "price",
        "minimum-seller-allowed-price",
        "maximum-seller-allowed-price",
        "item-condition",
        "quantity",
        "add-delete",
        "will-ship-internationally",
        "expedited-shipping",
        "standard-plus",
        "item-note",
        "fulfillment-center-id",
        "handling-time",
    },
}
PRODUCT_ID_TYPES = {"1": "ASIN", "2": "ISBN", "3": "UPC", "4": "EAN"}
CONDITIONS = {"11", "1", "2", "3", "4", "5", "6", "7", "8", "10"}


def report_charset(marketplace_id: str) -> str:
    country = MARKETPLACES[marketplace_id].country
    if country == "JP":
        return "cp932"
    if country in ("AU", "SG"):
        return "utf-8"
    return "cp1252"


def _flat_report(processed: int, successful: int, rows: list[tuple[int, str, str, str, str]]) -> str:
    lines = [
        "Feed Processing Summary:",
        f"\tNumber of records processed\t\t{processed}",
        f"\tNumber of records successful\t\t{successful}",
        "",
        "original-record-number\tsku\terror-code\terror-type\terror-message",
    ]
    lines += ["\t".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def process_flat_file(state: EmulatorState, feed: Feed, data: bytes, charset: str) -> tuple[str, str]:
    """Process a legacy tab-delimited listings file; returns (report text, charset of the report)."""
    mp = feed.marketplace_ids[0]
    out_charset = report_charset(mp)
    try:
        codecs.lookup(charset)
        text = data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        text = data.decode("cp1252", "replace")
    reader = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter="\t"))
    rows_out: list[tuple[int, str, str, str, str]] = []
    if not reader or "sku" not in [h.strip().lower() for h in reader[0]]:
        rows_out.append((0, "", "90011", "Fatal", "The column headings are missing or invalid: 'sku' is required."))
        return _flat_report(0, 0, rows_out), out_charset
    headings = [h.strip().lower() for h in reader[0]]
    known = FLAT_COLUMNS[feed.feed_type]
    for heading in headings:
        if heading and heading not in known:
            rows_out.append(
                (
                    0,
                    "",
                    "90061",
                    "Warning",
                    f"The field heading '{heading}' is not recognised; its values were ignored.",
                )
            )
    processed = successful = 0
    for number, raw in enumerate(reader[1:], start=1):
        if not any(cell.strip() for cell in raw):
            continue
        row = {h: (raw[i].strip() if i < len(raw) else "") for i, h in enumerate(headings) if h in known}
        processed += 1
        problems = _flat_row(state, feed, mp, row)
        if not any(kind == "Error" for _, kind, _ in problems):
            successful += 1
        rows_out += [(number, row.get("sku", ""), code, kind, text) for code, kind, text in problems]
    return _flat_report(processed, successful, rows_out), out_charset


def _flat_row(state: EmulatorState, feed: Feed, mp: str, row: dict[str, str]) -> list[tuple[str, str, str]]:
    sku = row.get("sku", "")
    seller = feed.seller_id
    if not sku:
        return [("90012", "Error", "A value is required in the 'sku' field.")]
    market = MARKETPLACES[mp]
    offer: dict[str, Any] = {"marketplace_id": mp, "currency": market.currency}
    for column, key in (
        ("price", "our_price"),
        ("minimum-seller-allowed-price", "minimum_seller_allowed_price"),
        ("maximum-seller-allowed-price", "maximum_seller_allowed_price"),
    ):
        if row.get(column):
            try:
                offer[key] = [{"schedule": [{"value_with_tax": Decimal(row[column])}]}]
            except ArithmeticError:
                return [("90244", "Error", f"The value '{row[column]}' in '{column}' is not a valid price.")]
    availability: dict[str, Any] = {}
    channel = row.get("fulfillment-channel") or row.get("fulfillment-center-id") or ""
    if row.get("quantity"):
        try:
            availability["quantity"] = int(row["quantity"])
        except ValueError:
            return [("90122", "Error", f"The value '{row['quantity']}' in 'quantity' is not a whole number.")]
    if row.get("handling-time"):
        try:
            availability["lead_time_to_ship_max_days"] = int(row["handling-time"])
        except ValueError:
            return [("90220", "Error", "'handling-time' must be a whole number of days.")]
    if availability or channel:
        availability["fulfillment_channel_code"] = channel or "DEFAULT"
    attributes: dict[str, Any] = {}
    if len(offer) > 2:
        attributes["purchasable_offer"] = [offer]
    if availability:
        attributes["fulfillment_availability"] = [availability]
    action = (row.get("add-delete") or "a").lower()
    if feed.feed_type == "POST_FLAT_FILE_INVLOADER_DATA":
        if row.get("item-condition") and row["item-condition"] not in CONDITIONS:
            return [("8115", "Error", f"The value '{row['item-condition']}' in 'item-condition' is invalid.")]
        if action in ("d", "x"):
            state.delete_listing(seller, mp, sku, silent=feed.silent)
            return []
        if state.listing(seller, mp, sku) is None:
            kind = PRODUCT_ID_TYPES.get(row.get("product-id-type", ""), "")
            product_id = row.get("product-id", "")
            if kind == "ASIN" and product_id:
                attributes["merchant_suggested_asin"] = [{"value": product_id, "marketplace_id": mp}]
            elif kind and product_id:
                attributes["externally_assigned_product_identifier"] = [
                    {"type": kind.lower(), "value": product_id, "marketplace_id": mp}
                ]
            catalog_type = (
                state.store.catalog.get(product_id).product_type if product_id in state.store.catalog else "PRODUCT"
            )
            _, issues, _ = state.put_listing(
                seller, mp, sku, catalog_type, "LISTING_OFFER_ONLY", attributes, silent=feed.silent
            )
            return [_flat_issue(i) for i in issues]
    elif state.listing(seller, mp, sku) is None:
        return [("13013", "Error", f"The SKU '{sku}' does not match any listing in this marketplace.")]
    listing = state.listing(seller, mp, sku)
    patches = [{"op": "replace", "path": f"/attributes/{name}", "value": value} for name, value in attributes.items()]
    if not patches:
        return []
    _, issues = state.patch_listing(
        seller,
        mp,
        sku,
        listing.product_type if listing else "PRODUCT",
        patches,
        silent=feed.silent,
        require_existing=True,
    )
    return [_flat_issue(i) for i in issues]


def _flat_issue(issue: dict[str, Any]) -> tuple[str, str, str]:
    kind = {"ERROR": "Error", "WARNING": "Warning"}.get(issue["severity"], "Warning")
    code = issue["code"]
    if "QUALIFICATION_REQUIRED" in issue.get("categories", []):
        code = "6039"
        text = "Merchant is not authorized to sell products under this restricted product group."
    else:
        text = issue["message"]
    return code, kind, text.replace("\t", " ").replace("\n", " ")
