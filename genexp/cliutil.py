"""The pieces every genexp command line shares: one-line argparse errors, argument types."""

from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line `<name>: error: ...` (exit code 2), where <name> is
    the prog without a leading `python -m ` (`genexp sample`, `genexp.sample`)."""

    def error(self, message: str):  # noqa: D102  (argparse's hook)
        name = error_name(self.prog)
        self.exit(2, f"{name}: error: {message} (see {self.prog} --help)\n")


def error_name(prog: str) -> str:
    return prog.removeprefix("python -m ")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def fail(prog: str, message: str) -> None:
    """Print one line `<name>: error: message` on stderr and exit 2."""
    print(f"{error_name(prog)}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def refuse_key_value(prog: str, argv: list[str], example: str) -> None:
    """`n=10`-style arguments (the syntax before flags) after the checkpoint: one line that says so."""
    for i, arg in enumerate(argv[1:], 1):
        after_flag = argv[i - 1].startswith("-") and "=" not in argv[i - 1]
        if "=" in arg and not arg.startswith("-") and not after_flag:
            fail(prog, f"unknown argument {arg!r}: options are flags, e.g. {example} (see {prog} --help)")
