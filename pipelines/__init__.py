"""Dagster wiring: definitions, partitions, jobs, schedules and the demo entry point. No business logic here."""
