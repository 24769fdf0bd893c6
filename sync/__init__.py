"""Amazon sync logic, Dagster-free: what to pull, what changed since Amazon last confirmed it, how to send it (one
JSON_LISTINGS_FEED or per-SKU patches), the submission ledger that makes a push resumable, and how Amazon's answers
become one sync_history row per SKU. Assets in `assets/` only wire these to Dagster."""
