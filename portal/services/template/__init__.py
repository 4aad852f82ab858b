"""The master template: generate, import, export, stats (stubs until the template work lands)."""
