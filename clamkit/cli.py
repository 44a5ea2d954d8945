"""Shared CLI plumbing: one error style for every clam-* command."""

from __future__ import annotations

import functools
import logging
import os
import sys

import click

from clamkit.errors import UserError

debug_option = click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")


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
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return debug_option(wrapper)
