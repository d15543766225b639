"""The recipe: seed -> data, model, loggers, callbacks, trainer -> fit -> test -> metrics.json."""

from __future__ import annotations

import json
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
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger

import genexp

log = logging.getLogger(__name__)


def _wandb_group(cfg: DictConfig) -> dict:
    """In a multirun, W&B runs are grouped by sweep (unless logger.group is set) and named by job."""
    if not HydraConfig.initialized() or "group" not in cfg.logger or cfg.logger.group is not None:
        return {}
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    return {"group": Path(hc.sweep.dir).name, "name": f"{hc.job.num}:{hc.job.override_dirname or 'defaults'}"}


def _loggers(cfg: DictConfig, run_dir: Path) -> list:
    loggers = [hydra.utils.instantiate(cfg.logger, **_wandb_group(cfg))] if cfg.get("logger") else []
    if not any(isinstance(lg, CSVLogger) for lg in loggers):  # every run also writes CSV metrics
        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def _scalar(v):
    return v.item() if isinstance(v, torch.Tensor) else v


def write_json(data: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)  # atomic: never a half-written metrics.json


def run(cfg: DictConfig) -> float | None:
    """Train and test one configuration; return the model's primary metric (for Optuna sweeps)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.paths.output_dir)
    start = time.time()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))

    # _convert_="all": constructors get plain lists/dicts, so checkpoints hold no OmegaConf objects and
    # load with torch.load(weights_only=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()  # find (or download) and verify the data before anything is written
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    loggers = _loggers(cfg, run_dir)
    callbacks = [hydra.utils.instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values() if c]
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    status, fit_metrics, metrics = "failed", {}, {}
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        fit_metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}
        if cfg.get("test", True):
            trainer.test(model, datamodule=datamodule, verbose=False)
        status = "finished"
    finally:
        status = "interrupted" if trainer.interrupted else status
        if trainer.is_global_zero:
            metrics = {**fit_metrics, **{k: _scalar(v) for k, v in trainer.callback_metrics.items()}}
            metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            write_json(
                {
                    **metrics,
                    "status": status,
                    "wall_time_s": round(time.time() - start, 2),
                    "epochs": trainer.current_epoch,
                    "global_step": trainer.global_step,
                    "device": str(trainer.strategy.root_device),
                    "world_size": trainer.world_size,
                    "cpu": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(),
                    "versions": {
                        "genexp": genexp.__version__,
                        "torch": torch.__version__,
                        "pytorch_lightning": pl.__version__,
                        "python": platform.python_version(),
                    },
                },
                run_dir / "metrics.json",
            )
        for lg in loggers:
            if isinstance(lg, WandbLogger):
                lg.experiment.finish()  # one W&B run per job, also in a multirun
    key = getattr(model, "primary_metric", None)
    value = metrics.get(key) if key else None
    log.info("run dir: %s%s", run_dir, f" | {key} = {value:.5g}" if value is not None else "")
    return value
