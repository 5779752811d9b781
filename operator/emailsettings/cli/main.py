"""`emailsettings`: the command-line front end.

Each subcommand lives in its own module with a ``register(subcommands)``
function that adds its parser and sets ``handler`` (args -> exit code). To add
one, write the module and list it in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast

SUBCOMMANDS: tuple[str, ...] = (
    "emailsettings.cli.validate",
    "emailsettings.cli.schema",
    "emailsettings.cli.notify",
)

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class Subcommand(Protocol):
    def register(self, subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the subcommand's parser; set ``handler`` with ``set_defaults``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emailsettings",
        description="Tools for EmailSettings resources (emailsettings.io/v1alpha1).",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = cast("Subcommand", importlib.import_module(name))
        module.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = cast("Handler", args.handler)
    try:
        return handler(args)
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
