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
    except GenexpError as e:  # a user's mistake: one line, no traceback
        print(f"genexp: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
