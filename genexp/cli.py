"""`genexp`: one command with subcommands, one command-line style.

    genexp train [group=choice ...] [key=value ...]     # = python -m genexp (Hydra; -m for a sweep)
    genexp sample CKPT --n N [--out FILE] [--seed 0] [--batch-size 500] [--device cpu] [--digit D]
    genexp loglik CKPT [--split test|val] [--n N] [--binarize stochastic|threshold] [--out FILE] ...
    genexp evaluate CKPT [key=value ...] [--out FILE]
    genexp summary PATH ... [--out FILE.md] [--json FILE.json] [--metrics K1,K2] [--title T]

Each subcommand is the `main(argv)` of its module, which also runs as `python -m genexp.<module>` with
the same flags. Bad input is one line `genexp <sub>: error: ...`, exit code 2. This module imports
nothing heavy, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "train": "train a model: Hydra overrides, as `python -m genexp` (`genexp train --help` lists the groups)",
    "sample": "write samples of a generative checkpoint to an .npz file",
    "loglik": "mean log-likelihood of a checkpoint on the fixed binarized test (or val) split",
    "evaluate": "score a checkpoint again through its run's evaluation callbacks",
    "summary": "run / sweep directories -> one results table",
}


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


def _train(argv: list[str]) -> int:
    from genexp import __main__ as entry

    old = sys.argv
    sys.argv = [old[0] if old and old[0] else "genexp", *argv]  # Hydra reads its overrides from sys.argv
    try:
        entry.main()
    finally:
        sys.argv = old
    return 0


def _sample(argv: list[str]) -> int:
    from genexp import sample

    sample.main(argv, prog="genexp sample")
    return 0


def _loglik(argv: list[str]) -> int:
    from genexp import loglik

    return loglik.main(argv, prog="genexp loglik")


def _evaluate(argv: list[str]) -> int:
    from genexp import evaluate

    return evaluate.main(argv, prog="genexp evaluate")


def _summary(argv: list[str]) -> int:
    from genexp import summary

    return summary.main(argv, prog="genexp summary")


DISPATCH = {"train": _train, "sample": _sample, "loglik": _loglik, "evaluate": _evaluate, "summary": _summary}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return (
        "usage: genexp COMMAND [ARGS ...]\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\n`genexp COMMAND --help` shows a command's options.\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), end="", file=sys.stdout if argv else sys.stderr)
        if not argv:
            print("genexp: error: a command is required (see genexp --help)", file=sys.stderr)
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in DISPATCH:
        fail("genexp", f"unknown command {command!r}; choose from {', '.join(COMMANDS)} (see genexp --help)")
    code = DISPATCH[command](rest)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
