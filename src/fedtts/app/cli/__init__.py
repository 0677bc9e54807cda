"""The ``fedtts`` command line (``main``), one module per command group; see :mod:`fedtts.app.cli.main`."""

from fedtts.app.cli.errors import CliError
from fedtts.app.cli.main import build_parser, main

__all__ = ["CliError", "build_parser", "main"]
