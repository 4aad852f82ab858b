"""Developer and test tools that stand in for external services (never imported by the app)."""
