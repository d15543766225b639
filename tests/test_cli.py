"""`python -m genexp` end to end: artifacts of a run, multirun, Optuna per family, DDP, Ctrl-C,
one-line errors, and a non-editable install. All slow: each spawns the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf

from genexp.models.base import GenerativeModule
from tests.conftest import MODELS, REAL_DATA, ROOT, choices, compose_config, data_kind, run_genexp
from tests.test_readme_commands import check_quiet, check_run_dir
from tests.wandb_records import logged, records

pytestmark = pytest.mark.slow


def _is_generative(model: str) -> bool:
    target = OmegaConf.load(ROOT / "conf" / "model" / f"{model}.yaml")._target_
    return issubclass(hydra.utils.get_class(target), GenerativeModule)


def test_help_and_cfg():
    out = run_genexp("--help")
    assert out.returncode == 0 and "model: " in out.stdout and "dbn_classifier" in out.stdout
    out = run_genexp("model=classifier", "model.lr=0.01", "--cfg", "job")
    assert out.returncode == 0 and OmegaConf.create(out.stdout).model.lr == 0.01


def test_unknown_model_choice_is_hydras_clear_error():
    out = run_genexp("model=nope")
    assert out.returncode != 0
    assert "Could not find 'model/nope'" in out.stderr and "Available options" in out.stderr


def test_unknown_key_is_refused():
    out = run_genexp("model.lrr=0.1")
    assert out.returncode != 0 and "Key 'lrr' is not in struct" in out.stderr


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("genexp: error:")]


def test_missing_dataset_offline_one_line_and_nothing_written(tmp_path):
    data = tmp_path / "empty"
    out = run_genexp(
        f"data.root={data}", "data.mirrors=[http://127.0.0.1:9/]", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert out.returncode == 2
    (line,) = _error_lines(out.stderr)
    assert str(data) in line and "GENEXP_DATA_DIR" in line and "Traceback" not in out.stderr
    assert not data.exists()  # no partial download, and no empty folder, left behind
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_corrupted_file_one_line(mnist_root, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in mnist_root.glob("*.gz"):
        (data / f.name).write_bytes(f.read_bytes())
    (data / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    out = run_genexp(f"data.root={data}", "data.download=false", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2
    (line,) = _error_lines(out.stderr)
    assert "train-labels-idx1-ubyte.gz" in line and "corrupted" in line


@pytest.mark.parametrize("model", MODELS)
def test_smoke_run_leaves_artifacts(model, tmp_path):
    """The README's `python -m genexp model=<model>` (tests/test_readme_commands.py leaves these commands
    to this test), with `trainer=smoke`: the model's default data, real (MNIST; a sequence model: the Bach
    chorales, whose cache is built once in ./data), and the default W&B logger (offline). A quiet console,
    the summary block last, and what the README's run-dir listing promises."""
    run, kind = tmp_path / "run", data_kind(model)
    out = run_genexp(f"model={model}", "trainer=smoke", f"hydra.run.dir={run}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert compose_config(f"model={model}").data._target_ == compose_config(f"data={REAL_DATA[kind]}").data._target_
    check_quiet(out)
    check_run_dir(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["wall_time_s"] > 0 and "torch" in metrics["versions"]
    assert any(k.startswith("test/") for k in metrics), metrics
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "csv" / "metrics.csv").is_file()
    # the checkpoint alone rebuilds the model (plain hparams: loads with torch's weights_only=True)
    cls = hydra.utils.get_class(OmegaConf.load(ROOT / "conf" / "model" / f"{model}.yaml")._target_)
    assert (run / "checkpoints" / "best.ckpt").is_file()  # every model ranks by its validation metric
    assert isinstance(cls.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu"), cls)
    (wandb_run,) = (run / "wandb").glob("offline-run-*")  # a real offline run that `wandb sync` uploads
    wandb_logged = logged(wandb_run)
    assert {k for k in metrics if k.startswith("test/")} <= wandb_logged["history"]
    assert "model" in wandb_logged["config"] and "trainer" in wandb_logged["config"]
    assert any(f.startswith("media/images/") and f.endswith(".png") for f in wandb_logged["files"])
    if _is_generative(model) and kind == "sequence":
        assert (run / "samples" / "piano_rolls_epoch_008.png").is_file() and (
            run / "samples" / "sample_0.mid"
        ).is_file()
        assert "test/loglik_step" in metrics and "piano_rolls/_type" in wandb_logged["history"]
    elif _is_generative(model):
        assert (run / "samples" / "epoch_008.png").is_file()
        assert "test/fid_mnist_cnn" in metrics and "samples/_type" in wandb_logged["history"]
    if _is_generative(model):
        # any generative checkpoint exports samples for outside evaluation
        from genexp.sample import export_samples, load_model

        with np.load(export_samples(load_model(run / "checkpoints" / "last.ckpt"), 20, tmp_path / "s.npz")) as f:
            shape = (20, *load_model(run / "checkpoints" / "last.ckpt").sample_shape)
            assert f["images"].shape == shape and 0 <= f["images"].min() <= f["images"].max() <= 1
            assert len(f["labels"]) == 20


def test_multirun_makes_one_dir_per_job(tmp_path):
    out = run_genexp(
        "model=classifier",
        "data=fake",
        "trainer=smoke",
        "logger=csv",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path}",
        multirun=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p for p in tmp_path.iterdir() if (p / "metrics.json").is_file())
    assert [p.name for p in runs] == ["0_classifier", "1_classifier"]
    seeds = [OmegaConf.load(p / ".hydra" / "config.yaml").seed for p in runs]
    assert seeds == [1, 2]


@pytest.mark.parametrize("search", choices("hparams_search"))
def test_optuna_preset_optimises_the_validation_metric_in_its_direction(search, tmp_path):
    out = run_genexp(
        f"hparams_search={search}",
        "hydra.sweeper.n_trials=2",
        "data=fake",
        "trainer=smoke",
        "logger=wandb",
        f"hydra.sweep.dir={tmp_path}",
        multirun=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    runs = [json.loads(p.read_text()) for p in tmp_path.glob("*/metrics.json")]
    cls = hydra.utils.get_class(compose_config(f"hparams_search={search}").model._target_)
    values = [r["val_metric"]["value"] for r in runs]
    assert len(values) == 2 and all(r["val_metric"]["name"] == cls.val_metric for r in runs)
    assert best.best_value == (max if cls.val_mode == "max" else min)(values)
    named = {}  # one W&B run per job, grouped by the sweep, named by the job's number and overrides
    for job in sorted(tmp_path.glob("*/metrics.json")):
        (run,) = job.parent.glob("wandb/offline-run-*")
        runs = [r.run for r in records(next(run.glob("run-*.wandb"))) if r.WhichOneof("record_type") == "run"]
        named[job.parent.name] = {(r.run_group, r.display_name) for r in runs}
    for job, names in named.items():
        number = job.split("_")[0]
        assert {g for g, _ in names} == {tmp_path.name}, names
        assert all(n.startswith(f"{number}:") and "model." in n for _, n in names), names


def test_a_non_editable_install_finds_the_config_tree(tmp_path):
    """A built wheel carries conf/ as genexp.conf: `python -m genexp` works from another directory."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheel_dir.glob("genexp-*.whl")
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert inst.returncode == 0, inst.stderr[-2000:]
    assert (site / "genexp" / "conf" / "config.yaml").is_file() and (site / "genexp" / "metrics" / "weights").is_dir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "genexp",
            "model=cdcgan",
            "data=fake",
            "trainer=smoke",
            "logger=csv",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and "test/fid_mnist_cnn" in metrics
    assert str(site) in out.stderr + out.stdout or (run / ".hydra" / "config.yaml").is_file()
