"""The ``suitcase`` command line: one Typer app, commands grouped by what they serve.

Each module here registers its commands on :data:`app`; ``streams.cli`` imports them all.
A command that cannot do what was asked raises :class:`CliError`; ``streams.cli.main``
prints it as one line and exits 2, as it does for a bad flag.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="suitcase",
    help="Live estimates, with 95% intervals, of handicrafts leaving Iran in travellers' luggage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class CliError(Exception):
    """A one-line explanation of why a command cannot run as asked (exit status 2)."""
