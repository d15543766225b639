"""The contract every model keeps, checked for each conf/model/*.yaml by glob: a new model config is
covered with no test edit. In-process runs of the real recipe (genexp.run): on fake data in the fast tier,
on a slice of Fashion-MNIST in the slow one."""

from __future__ import annotations

import json
import math

import hydra
import pytest
import pytorch_lightning as pl
import torch

from genexp.models.base import GenerativeModule, GenexpModule
from genexp.run import run
from tests.conftest import FAKE_DATA, MODELS, SMOKE_DATA, build_model, compose_config, data_kind, fake_data, model_class

_cls = model_class


GENERATIVE = [m for m in MODELS if issubclass(_cls(m), GenerativeModule)]


@pytest.mark.parametrize("model", MODELS)
def test_declares_validation_metric_and_data_needs(model):
    cls = _cls(model)
    assert issubclass(cls, GenexpModule)
    assert cls.val_metric.startswith("val/") and cls.val_mode in ("min", "max")


@pytest.mark.parametrize("model", MODELS)
def test_constructor_defaults_live_in_the_yaml_only(model):
    """Keyword-only constructor with no defaults: the yaml is the one place a default is typed."""
    import inspect

    params = [p for p in inspect.signature(_cls(model).__init__).parameters.values() if p.name != "self"]
    own = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert own and all(p.default is inspect.Parameter.empty for p in own), [p for p in own if p.default is not p.empty]


@pytest.mark.parametrize("model", GENERATIVE)
def test_sample_shape_range_and_determinism(model):
    m = build_model(model).eval()
    labels = torch.arange(6) % 10
    a = m.sample(6, labels=labels, generator=torch.Generator().manual_seed(3))
    b = m.sample(6, labels=labels, generator=torch.Generator().manual_seed(3))
    c = m.sample(6, labels=labels, generator=torch.Generator().manual_seed(4))
    assert a.shape == (6, *m.sample_shape) and a.dtype == torch.float32
    assert data_kind(model) != "image" or m.sample_shape == (1, 28, 28)  # image models: MNIST's digits
    assert 0 <= float(a.min()) <= float(a.max()) <= 1
    assert torch.equal(a, b), "same generator seed must give the same samples"
    assert not torch.equal(a, c), "another seed must give other samples"


# every model on its kind's synthetic data and, for images, on a tiny slice of a second real dataset (a few
# batches of 16, evaluation on 100 images; the official files from the Debian package
# dataset-fashion-mnist, .ci/run): tests.conftest.SMOKE_DATA
DATA = {(m, d): extra for m in MODELS for d, extra in SMOKE_DATA[data_kind(m)].items()}


@pytest.fixture(
    scope="module",
    params=[  # the real dataset's runs in the slow tier (the marker's meaning), the fake data's in the fast one
        pytest.param(p, id=f"{p[0]}-{p[1]}", marks=[] if p[1] in FAKE_DATA.values() else [pytest.mark.slow])
        for p in sorted(DATA, key=lambda p: p[::-1])
    ],
)
def smoke_run(request, tmp_path_factory):
    """One in-process `python -m genexp model=<m> data=<d> trainer=smoke logger=csv`, shared by the
    checks below (the same recipe the CLI runs: data, model, every evaluation callback, fit, test)."""
    model, data = request.param
    out = tmp_path_factory.mktemp(f"{model}-{data}")
    cfg = compose_config(f"model={model}", f"data={data}", "trainer=smoke", "logger=csv", *DATA[model, data])
    cfg.paths.output_dir = str(out)
    torch.set_num_threads(1)
    value = run(cfg)
    return model, cfg, out, value


def test_run_returns_the_finite_validation_metric(smoke_run):
    model, cfg, out, value = smoke_run
    metrics = json.loads((out / "metrics.json").read_text())
    cls = _cls(model)
    assert metrics["status"] == "finished"
    assert metrics["val_metric"] == {"name": cls.val_metric, "mode": cls.val_mode, "value": value}
    assert value is not None and math.isfinite(value)
    assert any(k.startswith("test/") for k in metrics)
    assert metrics["provenance"]["config"] == ".hydra/config.yaml" and "git_commit" in metrics["provenance"]


def test_training_changed_the_parameters(smoke_run):
    model, cfg, out, _ = smoke_run
    pl.seed_everything(cfg.seed, verbose=False)  # run() seeds like this before building the model
    initial = hydra.utils.instantiate(cfg.model, _convert_="all").state_dict()
    trained = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    changed = [k for k, v in initial.items() if v.is_floating_point() and not torch.equal(v, trained[k])]
    assert changed, "no parameter moved in a whole smoke run"


def test_checkpoint_round_trip(smoke_run):
    model, cfg, out, _ = smoke_run
    cls = _cls(model)
    path = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # plain data only: no pickled code
    assert ckpt["genexp_class"] == f"{cls.__module__}.{cls.__qualname__}"
    m1, m2 = cls.load_from_checkpoint(path, map_location="cpu"), cls.load_from_checkpoint(path, map_location="cpu")
    for k, v in m1.state_dict().items():
        assert torch.equal(v, ckpt["state_dict"][k]), k
    if issubclass(cls, GenerativeModule):
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert torch.equal(m1.eval().sample(4, generator=g1), m2.eval().sample(4, generator=g2))
    assert (out / "checkpoints" / "best.ckpt").is_file()  # every model has a validation metric


def test_evaluation_callbacks_ran(smoke_run):
    """Every evaluation callback the model's config switches on left its metric or picture."""
    model, cfg, out, _ = smoke_run
    metrics = json.loads((out / "metrics.json").read_text())
    callbacks = {name: c["_target_"].rsplit(".", 1)[-1] for name, c in cfg.callbacks.items() if c}

    def capable(method: str) -> bool:
        return hasattr(_cls(model), method)

    evidence = {
        "SampleGrid": lambda: any((out / "samples").glob("epoch_*.png")),
        "SampleQuality": lambda: f"test/fid_{cfg.data.feature_net}" in metrics and "test/modes_covered" in metrics,
        "FilterMosaic": lambda: any((out / "samples").glob("filters_epoch_*.png")),
        "MarkovChains": lambda: (out / "samples" / "negative_particles.png").is_file(),
        "FreeEnergyGap": lambda: "val/free_energy_gap" in metrics,
        "LogLikelihood": lambda: "test/loglik" in metrics and (out / "likelihood.json").is_file(),
        "PCABaseline": lambda: "test/pca_recon_sq_error" in metrics,
        "Reconstructions": lambda: (out / "samples" / "reconstructions.png").is_file(),
        "ClassifierErrors": lambda: (
            (out / "samples" / "test_errors.png").is_file()
            or 1.0 in (metrics.get("test/acc"), 1 - metrics.get("test/error", 1))
        ),  # no mistake to show
        # the GAN pictures and code purity act only for a model with their capability
        "StagePairs": lambda: not capable("sample_stages") or any((out / "samples").glob("stages_epoch_*.png")),
        "CodeTraversal": lambda: not capable("generate_with_codes") or any((out / "samples").glob("codes_cont0_*.png")),
        "CodePurity": lambda: not capable("code_posterior") or "test/code_error" in metrics,
        "Checkpoint": lambda: (out / "checkpoints" / "last.ckpt").is_file(),
        "TQDMProgressBar": lambda: True,
        "DivergenceGuard": lambda: metrics["status"] == "finished",  # it let a finite run through
        # sequence models: piano rolls and MIDI files of samples, log-likelihood per step and frame accuracy
        "PianoRolls": lambda: (
            any((out / "samples").glob("piano_rolls_epoch_*.png"))
            and (out / "samples" / "sample_0.mid").read_bytes()[:4] == b"MThd"
        ),
        "SequenceLikelihood": lambda: "test/loglik_step" in metrics and "test/frame_acc" in metrics,
        "FrameAccuracy": lambda: "val/frame_acc" in metrics,
    }
    unknown = set(callbacks.values()) - set(evidence)
    assert not unknown, f"add the evidence of {unknown} to this test"
    missing = [name for name, kind in callbacks.items() if not evidence[kind]()]
    assert not missing, f"{model}: callbacks left nothing: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_another_seed_trains_another_model(model, tmp_path):
    """seed=1 and seed=2 end on different weights (what makes `-m seed=1,2` two runs; that one seed gives
    the same run twice is the resume tests' bitwise comparison). In process, as the smoke runs above."""
    states = []
    for seed in (1, 2):
        smoke = ("trainer=smoke", "logger=csv", "test=false")
        cfg = compose_config(f"model={model}", fake_data(model), *smoke, f"seed={seed}")
        cfg.paths.output_dir = str(tmp_path / str(seed))
        torch.set_num_threads(1)
        run(cfg)
        states.append(torch.load(tmp_path / str(seed) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    assert any(not torch.equal(v, states[1][k]) for k, v in states[0].items()), "seed=1 and seed=2 trained alike"


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_trains_and_evaluates_under_bf16_autocast(model, tmp_path):
    """trainer.precision=bf16-mixed (what a GPU run uses): training steps under autocast, then every
    evaluation callback outside it. On the CPU here, the same autocast rules (bf16 matmuls)."""
    cfg = compose_config(
        f"model={model}", fake_data(model), "trainer=smoke", "logger=csv", "trainer.precision=bf16-mixed"
    )
    cfg.paths.output_dir = str(tmp_path)
    torch.set_num_threads(1)
    value = run(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "finished" and value is not None and math.isfinite(value)
