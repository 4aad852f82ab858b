"""RQ job functions and worker entry points.

Jobs are plain functions that open an app context (`jobs.context.app_context`), call one service,
and report (structured logs under `jobs.<area>`, progress in the RQ job's `meta`). They hold no
domain logic of their own, so a job and the CLI command or request that does the same thing
synchronously cannot drift apart.

Where jobs run:

* embedded default (`make run`, no REDIS_URL): a worker thread inside the web process,
  `jobs.embedded.start_embedded_worker`, on the in-process fakeredis;
* production: any number of worker processes, on any host, with the environment of the web
  process (DATABASE_URL, REDIS_URL, SECRET_KEY, IMAGEKIT_* ...)::

      rq worker --with-scheduler --worker-class jobs.worker.AppWorker \\
          --url "$REDIS_URL" seeding default

  Plain `rq worker --with-scheduler --url "$REDIS_URL" seeding default` works too, but builds
  the application again for every job. `--with-scheduler` is required: retries
  (`Retry(max, interval)`) and scheduled jobs are moved back onto the queues by the scheduler,
  which RQ runs inside one of the workers.
"""
