"""Developer tools and the test harness: never imported by the app, its services or its jobs.

The commands (`flask --app app bench`, `bench --http`, `pool simulate`):
    bench             seeding and assignment figures, in-process
    bench_http        `POST /api/v2/campaigns` through gunicorn
    simulate          a demand pattern replayed, fixed vs demand-aware pool sizing

What they and the end-to-end tests are built from:
    scratch           scratch databases and scratch apps, quiet loggers, the progress `Tick`
    prepare           gamemasters with API tokens, a master pool filled with ready campaigns
    processes         gunicorn and RQ workers as real processes, free ports, waiting, stopping
    usage             CPU of the server's processes and the database's backends (psutil)
    http_client       a gamemaster's API client and the replies it keeps
    load              client threads: a burst released at once, or a loop until stopped
    assignment_check  handed out twice, to the wrong user, half-built? (one checker for all)
    imagekit_server   a local ImageKit-compatible server
"""
