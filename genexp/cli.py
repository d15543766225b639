"""`genexp`: one command with subcommands, one command-line style.

    genexp train [group=choice ...] [key=value ...]     # = python -m genexp (Hydra; -m for a sweep)
    genexp sample CKPT --n N [--out FILE] [--seed 0] [--batch-size 500] [--device cpu] [--digit D]
    genexp loglik CKPT [--split test|val] [--n N] [--binarize stochastic|threshold] [--out FILE] ...
    genexp evaluate CKPT [key=value ...] [--out FILE]
    genexp summary PATH ... [--out FILE.md] [--json FILE.json] [--metrics K1,K2] [--title T]

Each subcommand is the `main(argv)` of its module, which also runs as `python -m genexp.<module>` with
the same flags. Bad input is one line `genexp <sub>: error: ...`, exit code 2.

A subcommand's module is imported only when that subcommand runs (importlib, not a top-level import):
`genexp --help` and `genexp summary` then start without torch and Lightning, in a fraction of a second
instead of seconds. No import cycle is involved: nothing under genexp imports this module.
"""

from __future__ import annotations

import importlib
import sys

from genexp.cliutil import fail

COMMANDS = {
    "train": "train a model: Hydra overrides, as `python -m genexp` (`genexp train --help` lists the groups)",
    "sample": "write samples of a generative checkpoint to an .npz file",
    "loglik": "mean log-likelihood of a checkpoint on the fixed binarized test (or val) split",
    "evaluate": "score a checkpoint again through its run's evaluation callbacks",
    "summary": "run / sweep directories -> one results table",
}


def _train(argv: list[str]) -> int:
    old = sys.argv
    sys.argv = [old[0] if old and old[0] else "genexp", *argv]  # Hydra reads its overrides from sys.argv
    try:
        importlib.import_module("genexp.__main__").main()
    finally:
        sys.argv = old
    return 0


def _tool(name: str):
    """Subcommand `name`: its module's main (`prog` names it in its messages)."""

    def call(argv: list[str]) -> int:
        code = importlib.import_module(f"genexp.{name}").main(argv, prog=f"genexp {name}")
        return 0 if code is None else code

    return call


DISPATCH = {"train": _train, **{name: _tool(name) for name in ("sample", "loglik", "evaluate", "summary")}}


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
