"""Entry point of the ``suitcase`` command: errors are one line and exit status 2."""

from __future__ import annotations

import os
import sys

import typer
from typer._click import exceptions as click_errors  # typer vendors click

from streams.commands import CliError, app
from streams.commands import archive  # noqa: F401  (registers its commands)

try:  # command groups that other modules add as they land
    from streams.commands import live  # noqa: F401
except ImportError:
    pass
try:
    from streams.commands import exports  # noqa: F401
except ImportError:
    pass


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a usage error, a :class:`CliError` or an OSError prints one line and
    returns 2; any other exception (a bug) prints one line and returns 1."""
    command = typer.main.get_command(app)
    try:
        import streams.pipeline.contract  # noqa: F401  (reads SUITCASE_BOUNDS once, here)
    except Exception as err:
        if type(err).__name__ != "BoundsError":
            raise
        print(f"suitcase: error: $SUITCASE_BOUNDS: {_one_line(str(err))}", file=sys.stderr)
        return 2
    try:
        result = command.main(args=argv, prog_name="suitcase", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        print("suitcase: aborted", file=sys.stderr)
        return 130
    except click_errors.NoArgsIsHelpError as err:
        print(err.format_message() if hasattr(err, "format_message") else err)
        return 0
    except click_errors.ClickException as err:
        print(f"suitcase: error: {_one_line(err.format_message())}", file=sys.stderr)
        return 2
    except CliError as err:
        print(f"suitcase: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or path no command foresaw: still one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"suitcase: error: {where}{_one_line(err.strerror or str(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: one line, the traceback only when asked for
        if os.environ.get("SUITCASE_DEBUG"):
            raise
        print(
            f"suitcase: internal error: {type(err).__name__}: {_one_line(str(err))[:300]} "
            "(SUITCASE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return result if isinstance(result, int) else 0


def _one_line(message: str) -> str:
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
