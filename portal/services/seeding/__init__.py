"""Filling a campaign with a copy of the master template's content.

Two seeders with one contract: `TraditionalSeeder` (per-record, the reference and last-resort
fallback) and `CampaignBatchSeeder` (set-based SQL). Both take an existing, empty target
campaign (see `campaigns.records.create_campaign_shell`) and return a `SeedResult`; the
contract is `base.Seeder`. `verify` checks that a campaign is a faithful copy, whoever seeded it.
"""
