"""Watching the pool and telling people about it.

`monitor` (the periodic pass), `alerts` (incidents and their delivery), `health` (`GET /health`),
`live` (`pool_update` pushes to the dashboards), `dashboard` (the portal's figures and charts),
`analytics` (usage over weeks).
"""
