"""`python -m genexp [group=choice ...] [key=value ...]`: the Hydra entry point."""

import logging
import os
import secrets
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from genexp import GenexpError
from genexp.callbacks.guard import Diverged
from genexp.ckpt import auto_checkpoint, requeue_aware
from genexp.run import run, val_direction
from genexp.sweep import record_failure

log = logging.getLogger("genexp")

# The top-level conf/ of a checkout is the one source; a built wheel carries a copy of it as the
# package `genexp.conf` (setup.py), found when there is no checkout beside the package.
_CHECKOUT_CONF = Path(__file__).resolve().parent.parent / "conf"
CONF = str(_CHECKOUT_CONF) if (_CHECKOUT_CONF / "config.yaml").is_file() else "pkg://genexp.conf"
_RUN_ID = secrets.token_hex(2)  # per process: two runs started in the same second get different dirs


# hparams_search presets read the Optuna direction from the model class: ${val_direction:${model._target_}}
OmegaConf.register_new_resolver("val_direction", val_direction, replace=True)
OmegaConf.register_new_resolver("run_id", lambda: _RUN_ID, replace=True)


def _run_stamp(now: str) -> str:
    """The last part of a run's dir: `<now>_<random>`, or under SLURM `slurm-<job id>`: every task
    (rank) of the job computes the same dir, and a requeued job (same id) finds its own last.ckpt."""
    if job := os.environ.get("SLURM_JOB_ID"):
        array = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm-{os.environ.get('SLURM_ARRAY_JOB_ID', job)}_{array}" if array else f"slurm-{job}"
    return f"{now}_{_RUN_ID}"


OmegaConf.register_new_resolver("run_stamp", _run_stamp, replace=True)


def _hydra_subdir(ckpt, now: str, run_dir: str) -> str:
    """A resumed run (ckpt_path set; with `auto`, when there is a last.ckpt to resume) keeps the first
    launch's .hydra/ and saves its own config beside it."""
    ckpt = requeue_aware(ckpt)  # a requeued SLURM job is a resume too
    if ckpt is None or (ckpt == "auto" and auto_checkpoint(run_dir) is None):
        return ".hydra"
    return f".hydra/resume_{now}"


OmegaConf.register_new_resolver("hydra_subdir", _hydra_subdir, replace=True)

# Quiet, useful console output: third-party lines that tell a user nothing about their run are dropped
# (each one named here; every other warning still shows). The W&B run is summarised by our own block.
os.environ.setdefault("WANDB_SILENT", "true")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning on torch 2.13
warnings.filterwarnings("ignore", message=r".*val_dataloader. but have no .validation_step")  # GANs: on purpose
# DDP: per-rank buffers (PCD chains, BatchNorm) need broadcast_buffers=False, which torch 2.13 deprecates
# while saying to keep it for rank-local buffers; Lightning's all_gather uses a deprecated torch function
warnings.filterwarnings("ignore", message=r"`broadcast_buffers` is deprecated")
warnings.filterwarnings("ignore", message=r"torch.distributed.nn.functional.all_gather is deprecated")
# DDP: the evaluation callbacks score on rank 0 and log with rank_zero_only (the models' own val/test logs
# all use sync_dist=True), which Lightning still flags as "recommended to use sync_dist=True"
warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('(val|test)/")


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # Lightning's product tips and device banner
        return not record.getMessage().startswith(("💡 Tip", "GPU available", "TPU available"))


EXIT = {"error": 2, "diverged": 3, "sigterm": 143}  # 143 = 128 + SIGTERM, what a shell reports


def _error(e: BaseException) -> GenexpError | None:
    """The user-facing error behind e: Hydra wraps errors raised in a constructor (bad model/data
    values) in InstantiationException, with the GenexpError as __cause__."""
    for err in (e, e.__cause__):
        if isinstance(err, GenexpError):
            return err
    return None


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoTips())
    try:
        return run(cfg)
    except SystemExit as e:
        if e.code is None:  # Lightning's SIGTERMException: a scheduler must not read a stop as success
            sys.exit(EXIT["sigterm"])
        raise
    except Exception as e:
        err = _error(e)
        if err is None and not multirun:
            raise  # a crash of a single run: the traceback is what a developer needs
        line = f"genexp: error: {err}" if err is not None else f"genexp: error: job crashed: {type(e).__name__}: {e}"
        if multirun:
            # one bad job harms no other: record it, let the sweep go on; SweepReport exits non-zero at the end
            log.error("%s", line, exc_info=err is None)
            record_failure(Path(HydraConfig.get().runtime.output_dir), line.removeprefix("genexp: error: "))
            return None
        print(line, file=sys.stderr)
        sys.exit(EXIT["diverged" if isinstance(err, Diverged) else "error"])


if __name__ == "__main__":
    main()
