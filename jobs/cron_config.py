"""`rq cron` configuration: the periodic jobs of jobs.schedule, for production.

Run exactly one, from the project directory, with the environment of the workers::

    rq cron jobs.cron_config --url "$REDIS_URL"

It only enqueues: the jobs run on the RQ workers (`rq worker ... seeding default`). Each job
is enqueued at start and then every interval; `ttl` drops a run that no worker started within
its interval, so a stopped worker does not come back to a backlog of stale monitor runs.
"""

from __future__ import annotations

from rq import cron

from jobs.schedule import FAILURE_TTL, PERIODIC_JOBS

for _job in PERIODIC_JOBS:
    cron.register(
        _job.function(),
        _job.queue,
        args=_job.args,
        interval=_job.interval_s,
        job_timeout=_job.timeout_s,
        ttl=_job.interval_s,
        result_ttl=2 * _job.interval_s,
        failure_ttl=max(FAILURE_TTL, 2 * _job.interval_s),
        name=f"campaign-pool-{_job.name}",
    )
