"""Watching the pool and telling people about it.

`monitor` (the periodic pass), `alerts` (incidents, their delivery, the active ones the portal
shows), `health` (`GET /health`), `payload` (the pool payload of `/admin/api/pool` and
`pool_update`, and pushing it), `live` (publishing `pool_update` to the dashboards), `charts`
(the dashboard's series) over `windows` (their time axis), `recent` (the latest claims and
actions), `analytics` (usage over weeks).
"""
