"""`python -m genexp [group=choice ...] [key=value ...]`: the Hydra entry point."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from genexp import GenexpError

# The top-level conf/ of a checkout is the one source; a built wheel carries a copy of it as the
# package `genexp.conf` (setup.py), found when there is no checkout beside the package.
_CHECKOUT_CONF = Path(__file__).resolve().parent.parent / "conf"
CONF = str(_CHECKOUT_CONF) if (_CHECKOUT_CONF / "config.yaml").is_file() else "pkg://genexp.conf"


def _direction(target: str) -> str:
    from genexp.run import val_direction  # imported when a sweeper asks: --help and --cfg stay fast

    return val_direction(target)


# hparams_search presets read the Optuna direction from the model class: ${val_direction:${model._target_}}
OmegaConf.register_new_resolver("val_direction", _direction, replace=True)


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
