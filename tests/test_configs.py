"""Every shipped config composes and instantiates (globbed: a new yaml is covered with no test edit)."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str, hydra_cfg: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_cfg)


def _resolve_without_hydra_runtime(cfg):
    """Fill the ${hydra:...} values that only exist inside a running app."""
    cfg.paths.output_dir = "/tmp/genexp-config-test"
    return cfg


@pytest.mark.parametrize("model", _choices("model"))
def test_model_configs_instantiate(model):
    cfg = _resolve_without_hydra_runtime(_compose(f"model={model}"))
    module = hydra.utils.instantiate(cfg.model)
    assert isinstance(module, torch.nn.Module) and sum(p.numel() for p in module.parameters()) > 0


@pytest.mark.parametrize("experiment", _choices("experiment"))
def test_experiment_configs_instantiate(experiment):
    cfg = _resolve_without_hydra_runtime(_compose(f"experiment={experiment}"))
    hydra.utils.instantiate(cfg.model)
    hydra.utils.instantiate(cfg.data)


@pytest.mark.parametrize("trainer", _choices("trainer"))
def test_trainer_configs_instantiate(trainer, tmp_path):
    cfg = _compose(f"trainer={trainer}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("composes; instantiating a GPU trainer needs a GPU")
    if trainer == "ddp":
        cfg.trainer.accelerator = "cpu"
    t = hydra.utils.instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
    assert t.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", _choices("logger"))
def test_logger_configs_instantiate(logger, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _compose(f"logger={logger}")
    cfg.paths.output_dir = str(tmp_path)
    if "job_type" in (cfg.logger or {}):
        cfg.logger.job_type = "test"  # ${hydra:runtime.choices.model} outside a running app
    lg = hydra.utils.instantiate(cfg.logger) if cfg.logger else None
    assert (lg is None) == (logger == "none")


@pytest.mark.parametrize("callbacks", _choices("callbacks"))
def test_callback_configs_instantiate(callbacks):
    cfg = _resolve_without_hydra_runtime(_compose(f"callbacks={callbacks}"))
    made = [hydra.utils.instantiate(c) for c in cfg.callbacks.values() if c]
    assert made


@pytest.mark.parametrize("data", _choices("data"))
def test_data_configs_instantiate(data):
    dm = hydra.utils.instantiate(_compose(f"data={data}").data)
    assert dm.hparams.batch_size > 0


@pytest.mark.parametrize("search", _choices("hparams_search"))
def test_hparams_search_configs_compose(search):
    cfg = _compose(f"hparams_search={search}", hydra_cfg=True)
    assert cfg.hydra.sweeper.params and "optuna" in cfg.hydra.sweeper._target_.lower()


@pytest.mark.parametrize("launcher", _choices("hydra/launcher"))
def test_launcher_configs_compose_and_instantiate(launcher):
    cfg = _compose(f"hydra/launcher={launcher}", hydra_cfg=True)
    cls = hydra.utils.get_class(cfg.hydra.launcher._target_)
    assert cls.__name__.endswith("Launcher")


def test_every_default_lives_in_one_yaml():
    """The model constructors' defaults equal their yaml's values (so the yaml is the one place to read)."""
    import inspect

    for model in _choices("model"):
        cfg = OmegaConf.load(CONF / "model" / f"{model}.yaml")
        cls = hydra.utils.get_class(cfg._target_)
        params = inspect.signature(cls.__init__).parameters
        for key, value in cfg.items_ex(resolve=False):
            if key.startswith("_") or key not in params or params[key].default is inspect.Parameter.empty:
                continue
            if OmegaConf.is_interpolation(cfg, key):  # e.g. seed: ${seed}, filled from the root config
                continue
            default = params[key].default
            value = OmegaConf.to_object(value) if OmegaConf.is_config(value) else value
            if isinstance(default, tuple):
                default = list(default)
            assert value == default, f"{model}.yaml {key}={value!r} but {cls.__name__} default is {default!r}"
