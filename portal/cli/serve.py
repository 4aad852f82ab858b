"""`flask --app app serve`: placeholder until the embedded runtime lands."""

import click


@click.command("serve")
def cli() -> None:
    """Run the portal on its embedded default."""
    raise click.ClickException("serve is not available yet")
