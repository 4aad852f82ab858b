"""Plumbing every service shares, and nothing domain-specific.

`database` (SQLite pragmas, telling an unreachable database from a failed statement), `retry`
(a unit of work again after a dropped connection), `queue` (the Redis connection, the RQ queues
and the one place jobs are enqueued), `sql_time` and `percentiles` (figures computed the same way
on SQLite and PostgreSQL; percentiles in Python and in SQL alike), `text_input` (what client
text must satisfy). Imports only models and config.
"""
