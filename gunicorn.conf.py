"""gunicorn settings for the web process: `gunicorn -c gunicorn.conf.py wsgi:app`.

One process, many threads. Flask-SocketIO runs in `threading` mode with simple-websocket, and a
Socket.IO client must keep talking to the process that holds its session, so each gunicorn
instance has exactly one worker process (`-w 1 --threads N`; gunicorn 27 has no eventlet worker).
Scale out with more instances behind a load balancer with sticky sessions; they share REDIS_URL,
which Socket.IO uses as its message queue. Each open WebSocket occupies one thread for its life,
so WEB_THREADS must cover the portal's browser tabs plus the API's concurrent requests.

Environment:
  PORT            port to listen on (default 8000, 1 to 65535), on HOST (default 0.0.0.0)
  WEB_THREADS     threads of the one worker process (default 32, 1 to 1000)
  WEB_TIMEOUT     seconds a silent worker may block before it is restarted (default 60)
  FORWARDED_ALLOW_IPS  proxies whose X-Forwarded-* headers are trusted (default 127.0.0.1)
  LOG_LEVEL       gunicorn's error log level (default info)
All are described in docs/configuration.md.

The app reads everything else (DATABASE_URL, REDIS_URL, SECRET_KEY ...) itself; the RQ workers
(`rq worker --with-scheduler --worker-class jobs.worker.AppWorker --url "$REDIS_URL" seeding
default`) need the same environment.
"""

import os
import sys

# The app's own validator, so that a bad value stops gunicorn at start with the app's message
# naming the variable (`configuration error: WEB_THREADS must be an integer, got 'many'`).
from portal.config import ConfigError, _int

try:
    port = _int(os.environ, "PORT", 8000, 1, 65535)
    threads = _int(os.environ, "WEB_THREADS", 32, 1, 1000)
    timeout = _int(os.environ, "WEB_TIMEOUT", 60, 1, 3600)
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

bind = f"{os.environ.get('HOST') or '0.0.0.0'}:{port}"
workers = 1  # see the docstring: Socket.IO sessions live in one process
worker_class = "gthread"
graceful_timeout = 30
keepalive = 5
# Never recycle the worker on a request count: it would cut every open WebSocket.
max_requests = 0

# Access log to stdout, errors to stderr: the platform's log collector picks both up.
accesslog = "-"
errorlog = "-"
loglevel = (os.environ.get("LOG_LEVEL") or "info").lower()
# The path without its query string: the Phoenix socket carries its token there
# (`/socket/websocket?token=...`, the Chi War web client's way), and tokens are never logged.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
# Heartbeat files in memory: a slow or full disk must not make gunicorn kill a healthy worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn's control socket defaults to one fixed path per user ($HOME/.gunicorn/gunicorn.ctl),
# which a second instance on the same host would fight over; nothing here uses gunicornc.
control_socket_disable = True
