"""`flask --app app bench`: placeholder until the batch seeder lands."""

import click


@click.command("bench")
def cli() -> None:
    """Measure seeding and assignment speed (DESIGN section 7)."""
    raise click.ClickException("bench is not available yet")
