"""Prepare a Postgres-backed Dagster instance before any process starts: create or upgrade its schema (what
`dagster instance migrate` does) and give every pool the definitions use its row at the default limit.

    python -m deploy.prepare      # with DAGSTER_HOME pointing at the deployment's dagster.yaml

Run it once per deployment and after every Dagster upgrade (a Kubernetes init job, an ECS one-off task), before the
daemon, the webserver and the run workers. Dagster creates a pool's row lazily, at the first step that claims a slot;
on Postgres two run workers doing that at once both INSERT, one fails on the unique key, and Dagster's fallback UPDATE
then runs in the aborted transaction, so that run fails (seen with four pods starting at once). A row created here,
before anything runs, leaves nothing to race for.
"""

from __future__ import annotations

import dagster as dg

__all__ = ["pools", "prepare"]


def pools(defs: dg.Definitions) -> set[str]:
    """The pools the definitions' ops and assets run in."""
    return {
        op.pool
        for job in defs.resolve_all_job_defs()
        for op in job.graph.iterate_op_defs()
        if getattr(op, "pool", None)
    }


def prepare(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, int]:
    """Upgrade the instance's storage and initialise each pool to the instance's default limit; returns pool → slots."""
    instance.upgrade()
    storage = instance.event_log_storage
    slots = {}
    for pool in sorted(pools(defs)):
        storage.initialize_concurrency_limit_to_default(pool)
        slots[pool] = storage.get_concurrency_info(pool).slot_count
    return slots


def main() -> None:
    from pipelines.definitions import defs

    with dg.DagsterInstance.get() as instance:
        for pool, slots in prepare(instance, defs).items():
            print(f"pool {pool}: {slots} slots")


if __name__ == "__main__":
    main()
