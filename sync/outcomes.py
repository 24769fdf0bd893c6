"""Amazon's answers as one final outcome per SKU: status, the seed's code where one applies, Amazon's message.

Statuses: `accepted`, `warning` (accepted with a warning), `error` (rejected), `category_restricted` (gated
category, approval needed), `not_applied` (accepted but Amazon shows other values on read-back), `deferred` (not sent
this run: quota or credentials ran out; sent next run), `pending` (inside a feed Amazon has not finished or that
could not be read this run: the next run polls it; or a patch whose answer was lost and that could not be read back:
resent next run) and `unchanged` (nothing to send). Codes: the seed's `category_restricted`, `ResourceNotFound`,
`InvalidInput`, `QuotaExceeded`, `Unauthorized`, else Amazon's own code; Amazon's raw code stays in the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from feeds.reports import ReportRow

__all__ = ["Outcome", "seed_code", "from_issues", "from_error", "from_report"]

# Listings issue codes and Listings Restrictions reason codes (Amazon's, and the emulator's choices after them).
_RESTRICTED = {"6039", "QUALIFICATION_REQUIRED", "APPROVAL_REQUIRED"}
_NOT_FOUND = {"90700", "NOT_FOUND", "8541", "ASIN_NOT_FOUND"}


@dataclass(frozen=True)
class Outcome:
    sku: str
    status: str
    code: str | None = None
    message: str | None = None


def seed_code(code: str | None, severity: str = "ERROR") -> str | None:
    """The seed's code for an Amazon issue code (an ERROR without a closer match is `InvalidInput`)."""
    code = (code or "").strip()
    if code.upper() in _RESTRICTED:
        return "category_restricted"
    if code.upper() in _NOT_FOUND:
        return "ResourceNotFound"
    if code in ("InvalidInput", "QuotaExceeded", "Unauthorized", "ResourceNotFound"):
        return code
    return "InvalidInput" if severity == "ERROR" else (code or None)


def _text(code: str | None, message: str | None) -> str:
    return f"[{code}] {message or ''}".strip() if code else (message or "")


def _worst(sku: str, issues: Iterable[tuple[str, str, str]]) -> Outcome:
    """(code, severity, message) issues of one SKU → its outcome (errors first, then warnings)."""
    issues = list(issues)
    errors = [i for i in issues if i[1] == "ERROR"]
    if errors:
        code, _, message = errors[0]
        mapped = seed_code(code)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        status = "category_restricted" if mapped == "category_restricted" else "error"
        return Outcome(sku, status, mapped, _text(code, message) + more)
    warnings = [i for i in issues if i[1] == "WARNING"]
    if warnings:
        code, _, message = warnings[0]
        return Outcome(sku, "warning", code or None, _text(code, message))
    return Outcome(sku, "accepted")


def from_issues(sku: str, answer: Mapping[str, Any]) -> Outcome:
    """A patchListingsItem/putListingsItem answer (`status`, `issues`) → outcome."""
    issues = [
        (str(i.get("code") or ""), str(i.get("severity") or "ERROR").upper(), str(i.get("message") or ""))
        for i in answer.get("issues") or []
        if isinstance(i, Mapping)
    ]
    outcome = _worst(sku, issues)
    if answer.get("status") not in (None, "ACCEPTED", "VALID") and outcome.status in ("accepted", "warning"):
        return Outcome(sku, "error", "InvalidInput", f"Amazon answered {answer.get('status')}")
    return outcome


def from_error(sku: str, exc: Exception) -> Outcome:
    """A client exception for one SKU's call → outcome; quota and credential failures are `deferred`."""
    code = getattr(exc, "code", type(exc).__name__)
    amazon = getattr(exc, "amazon_code", None)
    message = getattr(exc, "message", str(exc))
    if code in ("QuotaExceeded", "Throttled"):
        return Outcome(sku, "deferred", "QuotaExceeded", message)
    if code in ("Unauthorized", "LwaError"):
        return Outcome(sku, "deferred", "Unauthorized", message)
    mapped = seed_code(amazon) if amazon else None
    if mapped == "category_restricted":
        return Outcome(sku, "category_restricted", mapped, _text(amazon, message))
    return Outcome(sku, "error", code if code in ("InvalidInput", "ResourceNotFound") else code, _text(amazon, message))


def from_report(skus_by_message: Mapping[int, str], rows: Iterable[ReportRow], processing_status: str) -> list[Outcome]:
    """A feed's processing report → one outcome per SKU sent in it (`skus_by_message`: messageId → sku).

    A DONE feed accepts every message the report does not flag; a FATAL or CANCELLED feed applied nothing we can
    count on, so every SKU is an `error` carrying the feed-level issue."""
    per_sku: dict[str, list[tuple[str, str, str]]] = {}
    feed_level: list[ReportRow] = []
    known = set(skus_by_message.values())
    for row in rows:
        sku = row.sku if row.sku in known else skus_by_message.get(row.message_id or -1)
        if sku is None:
            feed_level.append(row)
            continue
        per_sku.setdefault(sku, []).append((row.code, row.severity, row.message))
    if processing_status != "DONE":
        first = next((r for r in feed_level if r.severity == "ERROR"), None)
        message = _text(first.code, first.message) if first else f"feed ended {processing_status}"
        return [Outcome(sku, "error", "InvalidInput", message) for sku in skus_by_message.values()]
    return [_worst(sku, per_sku.get(sku, [])) for sku in skus_by_message.values()]
