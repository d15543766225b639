"""`python -m genexp [group=choice ...] [key=value ...]`: the Hydra entry point."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from genexp import GenexpError

CONF = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from genexp.run import run  # imported here so --help and --cfg stay fast

    try:
        return run(cfg)
    except Exception as e:
        # a user's mistake: one line, no traceback; Hydra wraps errors raised in a constructor
        # (bad model/data values) in InstantiationException, with the GenexpError as __cause__
        err = e if isinstance(e, GenexpError) else e.__cause__
        if not isinstance(err, GenexpError):
            raise
        print(f"genexp: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
