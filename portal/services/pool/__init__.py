"""The campaign pool, from claim to refill.

`claim` (the atomic hand-out), `creation` (a user's campaign: their pool, the master pool, else
seeding), `config` (targets and limits, runtime overrides), `demand` (demand-aware sizing),
`replenish` (refills), `rollout` and `rollout_status` (rebuilds after a template version change),
`cleanup` (deleting what nobody will use), `status` (levels and assignment figures), `listing`
(the pool's campaigns, a page at a time), `events` (recording what happened: every
`pool_events` row and its log line), `actions` (the portal's quick actions).
"""
