"""Pure helpers of the deployed mode's Postgres state (no server): stable lock keys, the throttle's SQL for
Postgres, and error messages without the DSN's password."""

from __future__ import annotations

from resources.postgres import advisory_key, scrub
from resources.spapi._throttle_pg import _translate


def test_advisory_keys_are_stable_64_bit_and_distinct() -> None:
    # The same in every process and every Python (not `hash()`, which is salted per process).
    assert advisory_key("push:us") == -7777103400333029569
    assert advisory_key("push:us") != advisory_key("push:uk")
    assert all(-(2**63) <= advisory_key(f"push:{c}") < 2**63 for c in ("us", "uk", "de"))


def test_the_throttle_sql_names_the_schema_tables_and_keeps_the_statement() -> None:
    sql = (
        "INSERT INTO windows(seller, slot) VALUES (?,?) "
        "ON CONFLICT(seller, slot) DO UPDATE SET count = windows.count + 1"
    )
    assert _translate(sql) == (
        "INSERT INTO sales_channel.throttle_windows AS windows(seller, slot) VALUES (%s,%s) "
        "ON CONFLICT(seller, slot) DO UPDATE SET count = windows.count + 1"
    )
    assert _translate("DELETE FROM feed_submissions WHERE id=?") == (
        "DELETE FROM sales_channel.throttle_feed_submissions AS feed_submissions WHERE id=%s"
    )


def test_error_messages_lose_the_password_in_every_form() -> None:
    dsn = "postgresql://app:p%40ss-w0rd@db.internal:5432/state"
    message = f"could not connect to {dsn}: password p%40ss-w0rd (p@ss-w0rd) refused"
    cleaned = scrub(message, dsn)
    assert "p%40ss-w0rd" not in cleaned and "p@ss-w0rd" not in cleaned
    assert "postgresql://app:***@db.internal:5432/state" in cleaned
