"""The recipe: seed -> data, model, loggers, callbacks, trainer -> fit -> test -> metrics.json.

Nothing here knows a model: what a run returns to a sweeper is the model's declared validation metric
(`val_metric`, `val_mode`), and the evaluation is whatever callbacks the config switched on.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning_fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from genexp.callbacks.guard import Diverged, DivergenceGuard
from genexp.ckpt import load_checkpoint, resolve_ckpt_path
from genexp.ckpt_fit import check_compatible
from genexp.loggers import CSVLogger as AppendingCSVLogger  # keeps the history across a resume
from genexp.record import git_state, versions, write_json
from genexp.validate import check_config

log = logging.getLogger(__name__)


def _wandb_group(cfg: DictConfig) -> dict:
    """In a multirun, W&B runs are grouped by sweep (unless logger.group is set) and named by job."""
    if not HydraConfig.initialized() or "group" not in cfg.logger or cfg.logger.group is not None:
        return {}
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    return {"group": Path(hc.sweep.dir).name, "name": f"{hc.job.num}:{hc.job.override_dirname or 'defaults'}"}


def _loggers(cfg: DictConfig, run_dir: Path, checkpoint: dict | None) -> list:
    extra = _wandb_group(cfg)
    if checkpoint and checkpoint.get("wandb_run_id") and "id" not in (cfg.get("logger") or {}):
        extra.update(id=checkpoint["wandb_run_id"], resume="allow")  # a resumed job continues its W&B run
    loggers = [hydra.utils.instantiate(cfg.logger, **extra)] if cfg.get("logger") else []
    if not any(isinstance(lg, CSVLogger) for lg in loggers):  # every run also writes CSV metrics
        loggers.append(AppendingCSVLogger(save_dir=str(run_dir), name="csv", version=""))
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


class _EpochRecord(pl.Callback):
    """Rewrites metrics.json at every epoch end, with the wall time of each training epoch so far."""

    def __init__(self, update):
        self.update, self.epoch_times, self._start = update, [], None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if self._start is not None:
            self.epoch_times.append(round(time.perf_counter() - self._start, 3))
        self.update()


def one_line(e: BaseException) -> str:
    """`Type: message` on one line (the reason of a failed run)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}"[:500]


def _number(v):
    v = v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v
    return v if isinstance(v, (int, float)) else None


def val_direction(target: str) -> str:
    """ "minimize" / "maximize" for the model class `target` (the Optuna sweeper's direction)."""
    return "maximize" if hydra.utils.get_class(target).val_mode == "max" else "minimize"


def run(cfg: DictConfig) -> float | None:
    """Train and test one configuration; return the model's validation metric (for sweepers)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.paths.output_dir)
    start = time.time()
    check_config(cfg, run_dir)  # bad values: one line, before anything is instantiated or written
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))

    # _convert_="all": constructors get plain lists/dicts, so checkpoints hold no OmegaConf objects and
    # load with torch.load(weights_only=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()  # find (or download) and verify the data before anything is written
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir)  # "last" = this run dir's last.ckpt
    checkpoint = load_checkpoint(ckpt_path, expected_cls=type(model)) if ckpt_path else None
    if ckpt_path:  # refused in one line before anything runs: another model, other shapes, a bad file
        check_compatible(model, checkpoint, ckpt_path)
    callbacks = [hydra.utils.instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks.sort(key=lambda c: not isinstance(c, DivergenceGuard))  # first: no evaluation of NaN weights
    loggers = _loggers(cfg, run_dir, checkpoint)
    del checkpoint  # Lightning reads the file again in fit
    extra = {}
    if SLURMEnvironment.detect():  # one owner of requeue: submitit (USR2 -> requeue; the job resumes with
        # ckpt_path auto), so Lightning's own auto-requeue on USR1 is off
        extra["plugins"] = [
            *(hydra.utils.instantiate(cfg.trainer.get("plugins") or [])),
            SLURMEnvironment(auto_requeue=False),
        ]
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers, callbacks=callbacks, default_root_dir=str(run_dir), **extra
    )
    provenance = {**git_state(), "config": ".hydra/config.yaml", "feature_net": None}
    for c in callbacks:
        provenance.update(c.provenance() if hasattr(c, "provenance") else {})
    record = {
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "provenance": provenance,
        "versions": versions(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }
    status, reason, metrics = "failed", None, {}

    def write(status: str) -> None:
        if trainer.is_global_zero:
            value = metrics.get(model.val_metric)
            write_json(
                {
                    **metrics,
                    **record,
                    "status": status,
                    "reason": reason,
                    "val_metric": {"name": model.val_metric, "mode": model.val_mode, "value": value},
                    "wall_time_s": round(time.time() - start, 2),
                    "epoch_time_s": epoch_record.epoch_times,  # training epochs (with their validation) of this process
                    "epochs": trainer.current_epoch,
                    "global_step": trainer.global_step,
                    "device": str(trainer.strategy.root_device),
                    "world_size": trainer.world_size,
                },
                run_dir / "metrics.json",
            )

    def collect() -> None:
        metrics.update({k: _number(v) for k, v in trainer.callback_metrics.items() if _number(v) is not None})

    # a record from the start, rewritten at every epoch end: even a kill -9 leaves the last completed epoch
    epoch_record = _EpochRecord(lambda: (collect(), write("running")))
    trainer.callbacks.append(epoch_record)
    write("running")
    ddp_env = {k: os.environ.get(k) for k in _DDP_ENV}
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        collect()
        if cfg.get("test", True):
            trainer.test(model, datamodule=datamodule, verbose=False)
            if cfg.get("test_ckpt", "last") == "best":
                collect()
                _test_best(trainer, model, datamodule, metrics)
        status = "finished"
    except Diverged as e:
        status, reason = "diverged", str(e)
        raise
    except (KeyboardInterrupt, SystemExit) as e:  # Ctrl-C (Lightning exits 1), SIGTERM (SIGTERMException)
        status, reason = "interrupted", type(e).__name__
        raise
    except BaseException as e:
        status, reason = "failed", one_line(e)
        raise
    finally:
        collect()
        write(status)
        for lg in loggers if trainer.is_global_zero else ():  # other ranks hold W&B's dummy experiment
            if isinstance(lg, WandbLogger):
                lg.experiment.summary["status"] = status
                lg.experiment.finish(exit_code=0 if status == "finished" else 1)  # one W&B run per job
        _end_distributed(ddp_env)
    value = metrics.get(model.val_metric)
    if trainer.is_global_zero:
        log.info("%s", summary_block(run_dir, status, model, metrics, time.time() - start, loggers))
    return value


def _test_best(trainer: pl.Trainer, model, datamodule, metrics: dict) -> None:
    """test_ckpt=best: the final weights' test metrics are kept as `last/test/...`; the test runs again on
    best.ckpt (the checkpoint with the best validation metric: early stopping chosen on validation data),
    whose metrics are the run's `test/...`, with `test/ckpt_epoch` the epoch it was saved at (0-based).
    Without a best.ckpt (no validation metric ranked yet) the final weights stay the tested ones."""
    metrics.update({f"last/{k}": v for k, v in list(metrics.items()) if k.startswith("test/")})
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    if not path:
        log.warning("test_ckpt=best: no best.ckpt was ranked; the final weights are the tested ones")
        return
    epoch = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]  # not read whole
    trainer.test(model, datamodule=datamodule, ckpt_path=path, verbose=False)
    metrics["test/ckpt_epoch"] = epoch


_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def _end_distributed(env: dict[str, str | None]) -> None:
    """After a DDP job: close its process group and give back the variables Lightning's launcher set, so
    the next job of a multirun (same process) starts its own group instead of reusing a dead one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


HEADLINE = (
    "test/loglik",
    "test/loglik_step",
    "test/frame_acc",
    "test/fid_mnist_cnn",
    "test/cond_acc",
    "test/acc",
    "test/error",
    "test/recon_sq_error",
)


def summary_block(run_dir: Path, status: str, model, metrics: dict, seconds: float, loggers) -> str:
    """The last thing a run prints: where it is, how it ended, its numbers, its picture."""
    better = "higher" if model.val_mode == "max" else "lower"
    value = metrics.get(model.val_metric)
    lines = [
        f"genexp: {status} in {seconds:.0f} s: {type(model).__name__}",
        f"  run dir            {run_dir}",
        f"  {model.val_metric:<18} {'n/a' if value is None else f'{value:.5g}'} (validation, {better} is better)",
    ]
    lines += [f"  {k:<18} {metrics[k]:.5g}" for k in HEADLINE if metrics.get(k) is not None]
    if metrics.get("test/ckpt_epoch") is not None:  # test_ckpt=best
        epoch = metrics["test/ckpt_epoch"]
        lines.append(f"  tested             best.ckpt (epoch {epoch:.0f}); the final weights' scores: last/test/...")
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    if grids:
        lines.append(f"  samples            {grids[-1]}")
    if any(isinstance(lg, WandbLogger) and lg.experiment.settings.mode == "offline" for lg in loggers):
        lines.append(f"  upload to W&B      wandb sync {run_dir}/wandb/offline-run-*")
    return "\n".join(lines)
