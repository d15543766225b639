"""Every shipped config composes and instantiates (globbed: a new yaml is covered with no test edit)."""

from __future__ import annotations

import hydra
import pytest
import torch

from tests.conftest import choices, compose_config


@pytest.mark.parametrize("model", choices("model"))
def test_model_configs_instantiate(model):
    module = hydra.utils.instantiate(compose_config(f"model={model}").model, _convert_="all")
    assert isinstance(module, torch.nn.Module) and sum(p.numel() for p in module.parameters()) > 0


@pytest.mark.parametrize("experiment", choices("experiment"))
def test_experiment_configs_instantiate(experiment):
    cfg = compose_config(f"experiment={experiment}")
    hydra.utils.instantiate(cfg.model, _convert_="all")
    hydra.utils.instantiate(cfg.data, _convert_="all")
    [hydra.utils.instantiate(c, _convert_="all") for c in cfg.callbacks.values() if c]


@pytest.mark.parametrize("trainer", choices("trainer"))
def test_trainer_configs_instantiate(trainer, tmp_path):
    cfg = compose_config(f"trainer={trainer}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("composes; instantiating a GPU trainer needs a GPU")
    if trainer == "ddp":
        cfg.trainer.accelerator = "cpu"
    t = hydra.utils.instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
    assert t.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", choices("logger"))
def test_logger_configs_instantiate(logger, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config(f"logger={logger}")
    cfg.paths.output_dir = str(tmp_path)
    if "job_type" in (cfg.logger or {}):
        cfg.logger.job_type = "test"  # ${hydra:runtime.choices.model} outside a running app
    lg = hydra.utils.instantiate(cfg.logger) if cfg.logger else None
    assert (lg is None) == (logger == "none")


@pytest.mark.parametrize("model", choices("model"))
@pytest.mark.parametrize("callbacks", choices("callbacks"))
def test_callback_configs_instantiate(callbacks, model):
    """The callbacks of every model (its conf/eval/ family included) instantiate."""
    cfg = compose_config(f"callbacks={callbacks}", f"model={model}")
    made = [hydra.utils.instantiate(c, _convert_="all") for c in cfg.callbacks.values() if c]
    assert len(made) >= 2


@pytest.mark.parametrize("data", choices("data"))
def test_data_configs_instantiate(data):
    dm = hydra.utils.instantiate(compose_config(f"data={data}").data, _convert_="all")
    assert dm.hparams.batch_size > 0


@pytest.mark.parametrize("search", choices("hparams_search"))
def test_hparams_search_optimises_the_models_validation_metric(search):
    """Each family's Optuna preset: parameters that exist for its model, the model's direction."""
    cfg = compose_config(f"hparams_search={search}", hydra_cfg=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower() and sweeper.study_name and "storage" in sweeper
    cls = hydra.utils.get_class(cfg.model._target_)
    assert sweeper.direction == {"min": "minimize", "max": "maximize"}[cls.val_mode]
    for key in sweeper.params:
        assert key.startswith("model.") or key.startswith("data."), key
        group, name = key.split(".", 1)
        assert name in cfg[group], f"{search}: {key} is not a key of the {group} config"


@pytest.mark.parametrize("launcher", choices("hydra/launcher"))
def test_launcher_configs_compose_and_instantiate(launcher):
    cfg = compose_config(f"hydra/launcher={launcher}", hydra_cfg=True)
    cls = hydra.utils.get_class(cfg.hydra.launcher._target_)
    assert cls.__name__.endswith("Launcher")


def test_default_run_is_a_generative_model():
    from genexp.models.base import GenerativeModule

    cfg = compose_config()
    assert issubclass(hydra.utils.get_class(cfg.model._target_), GenerativeModule)
