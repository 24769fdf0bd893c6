"""One run as a pod runs it, for tests/deploy/test_pods.py, started with its own empty working directory, HOME,
TMPDIR and DAGSTER_HOME (a copy of deploy/dagster.yaml: Dagster's storage is the shared Postgres):

    python -m tests.deploy.pod_run <job> <partition or -> <run-config-json> [--stop-after-create-feed]
    python -m tests.deploy.pod_run --sensor <sensor name>     one tick, as the daemon evaluates it

`--stop-after-create-feed`: once createFeed has answered, print `CREATED <feedId>` and wait, so the test can SIGKILL
the process at exactly that point (after Amazon has the feed, before the run records its id). The last line printed
is `RESULT {json}`: the run id, success and each asset's materialization metadata (or the sensor's run requests)."""

from __future__ import annotations

import json
import sys
import time


def _sensor(name: str) -> dict:
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.resources import resources

    sensor = defs.resolve_sensor_def(name)
    with dg.DagsterInstance.get() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"warehouse": resources()["warehouse"]})
        result = sensor(context)
    requests = (result.run_requests or []) if isinstance(result, dg.SensorResult) else list(result or [])
    skip = getattr(result, "skip_reason", None)
    return {
        "run_requests": [{"job": r.job_name, "partition": r.partition_key} for r in requests],
        "skip_reason": getattr(skip, "skip_message", skip),
        "cursor": getattr(result, "cursor", None),
    }


def _run(job_name: str, partition: str, config: dict) -> dict:
    import dagster as dg

    from pipelines.definitions import defs

    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=None if partition == "-" else partition,
            run_config=config,
            instance=instance,
            raise_on_error=False,
        )
    summary: dict = {"run_id": result.run_id, "success": result.success, "assets": {}}
    summary["failures"] = [
        f"{event.step_key}: {event.event_specific_data.error.to_string()}"
        for event in result.all_events
        if event.is_step_failure
    ]
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        summary["assets"][materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    return summary


def main(argv: list[str]) -> int:
    if argv[0] == "--sensor":
        print("RESULT " + json.dumps(_sensor(argv[1]), default=str), flush=True)
        return 0
    job_name, partition, config = argv[0], argv[1], json.loads(argv[2])
    if "--stop-after-create-feed" in argv[3:]:
        from resources.spapi._client import SpApiClient

        original = SpApiClient.submit_feed

        def submit_feed(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            print(f"CREATED {result}", flush=True)
            time.sleep(3600)  # the test kills the process here
            return result

        SpApiClient.submit_feed = submit_feed
    summary = _run(job_name, partition, config)
    print("RESULT " + json.dumps(summary, default=str), flush=True)
    return 0 if summary["success"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
