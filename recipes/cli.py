"""The `dissect` command line (placeholder until the recipes land)."""

import click


@click.group()
def main():
    """DiSSECT pretraining and transfer for chest X-rays."""
