"""The ``suitcase`` command line: one Typer app, commands grouped by what they serve.

Each module here registers its commands on :data:`app`; ``streams.commands.cli`` imports them all.
A command that cannot do what was asked raises :class:`CliError`; ``streams.commands.cli.main``
prints it as one line and exits 2, as it does for a bad flag.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

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


#: Help of the ``--bound`` option of every command that decodes events.
BOUND_HELP = (
    "Plausibility bound NAME=VALUE (repeatable), over $SUITCASE_BOUNDS and the defaults, "
    "e.g. max_future_days=2 (see the README)."
)


def apply_bounds(settings: list[str] | None) -> None:
    """Make ``$SUITCASE_BOUNDS`` and then ``--bound`` settings the bounds decoding applies."""
    from streams.pipeline import contract

    try:
        bounds = contract.parse_bounds(settings or [], contract.bounds_from_env())
    except contract.BoundsError as err:
        raise CliError(f"--bound or $SUITCASE_BOUNDS: {err}") from None
    contract.configure(bounds)


def why(err: OSError) -> str:
    """An OSError in words, without Python's decoration."""
    return err.strerror or str(err) or type(err).__name__


@contextmanager
def writing(path: Path, what: str = "--out"):
    """Turn a failure to write ``path`` into a one-line :class:`CliError`."""
    try:
        yield
    except FileExistsError as err:  # making a parent directory where a file is
        raise CliError(f"cannot write {what} {path}: {err.filename} is not a directory") from None
    except OSError as err:
        raise CliError(f"cannot write {what} {path}: {why(err)}") from None


def account(tallies: dict, unpriced: dict | None = None) -> str:
    """One line: what became of an archive's lines (accepted, duplicates, rejected by reason)."""
    from collections import Counter

    accepted = sum(t.accepted for t in tallies.values())
    duplicates = sum(t.duplicates for t in tallies.values())
    rejected: Counter[str] = Counter()
    for t in tallies.values():
        rejected.update(t.rejected)
    text = f"{accepted:,} accepted, {duplicates:,} duplicates, {sum(rejected.values()):,} rejected"
    if rejected:
        text += " (" + ", ".join(f"{r} {n:,}" for r, n in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))) + ")"
    if unpriced:
        text += f", {sum(unpriced.values()):,} without an exchange rate"
    return text
