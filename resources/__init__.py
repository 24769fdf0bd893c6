"""Dagster resources: the embedded warehouse, and the SP-API resource (the only code that talks to Amazon)."""
