"""One run as a pod runs it, for tests/deploy/test_pods.py: `python -m tests.deploy.pod_run <job> <channel>
<run-config-json> [--stop-after-create-feed]`, started with its own empty working directory, HOME, TMPDIR and
DAGSTER_HOME (a copy of deploy/dagster.yaml: Dagster's run storage is the shared Postgres).

`--stop-after-create-feed`: once createFeed has answered, print `CREATED <feedId>` and wait, so the test can SIGKILL
the process at exactly that point (after Amazon has the feed, before the run records its id)."""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    job_name, channel, config = argv[0], argv[1], json.loads(argv[2])
    if "--stop-after-create-feed" in argv[3:]:
        from resources.spapi._client import SpApiClient

        original = SpApiClient.submit_feed

        def submit_feed(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            print(f"CREATED {result}", flush=True)
            time.sleep(3600)  # the test kills the process here
            return result

        SpApiClient.submit_feed = submit_feed

    import dagster as dg

    from pipelines.definitions import defs

    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=channel, run_config=config, instance=instance, raise_on_error=False
        )
    summary = {"run_id": result.run_id, "success": result.success}
    for materialization in result.asset_materializations_for_node("listings_submission"):
        summary["listings_submission"] = {k: v.value for k, v in materialization.metadata.items()}
    print("RESULT " + json.dumps(summary, default=str), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
