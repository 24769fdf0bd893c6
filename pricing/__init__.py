"""Buy Box pricing rules: pure SQL over DuckDB relations, money as integer minor units. No Dagster here."""
