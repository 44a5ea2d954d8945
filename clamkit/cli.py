"""Shared CLI plumbing: one error style for every clam-* command.

    UserError (bad file, flag, config value)        -> "error: <one line>", exit 2
    OSError (full disk, unwritable --out, EACCES)   -> "error: <file>: <reason>", exit 2
    KeyboardInterrupt (Ctrl-C)                      -> "error: interrupted", exit 130
    anything else is a bug: Python's traceback, exit 1.
--debug (or CLAMKIT_DEBUG=1) re-raises, so every case shows its traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys

import click

from clamkit.errors import UserError

debug_option = click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""Every clam-* command and group: -h works like --help, help text wraps at 100 columns."""


def debug_enabled() -> bool:
    """--debug was given (handle_errors sets clamkit's logger to DEBUG) or CLAMKIT_DEBUG is set."""
    return logging.getLogger("clamkit").isEnabledFor(logging.DEBUG) or bool(os.environ.get("CLAMKIT_DEBUG"))


def handle_errors(fn):
    """Run a click command body; UserError -> one line on stderr and exit 2 (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, debug: bool = False, **kwargs):
        # Our loggers at INFO; third-party libraries (absl, OpenGL, ...) only from WARNING up.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("clamkit").setLevel(logging.DEBUG if debug else logging.INFO)
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if debug or os.environ.get("CLAMKIT_DEBUG"):
                raise
            click.echo(f"error: {' '.join(str(e).split())}", err=True)
            sys.exit(2)
        except OSError as e:  # the file system said no; nothing the code can fix, nothing a traceback explains
            if debug or os.environ.get("CLAMKIT_DEBUG"):
                raise
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"error: {where}{e.strerror or e} (--debug shows where)", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            if debug or os.environ.get("CLAMKIT_DEBUG"):
                raise
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return debug_option(wrapper)
