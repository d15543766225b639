"""`python -m genexp ... trainer=ddp` for every model (the ranks end on the same weights), a sweep of DDP
jobs (one dir per job, each job's ranks on its own overrides, no stray dir: Lightning #11300), SLURM
requeue, ckpt_path=auto, the SLURM preset and Optuna under DDP. That another seed trains another model
is tested per model in tests/test_contract.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from tests import zygote
from tests.conftest import MODELS, ROOT, fake_data, run_genexp

pytestmark = pytest.mark.slow


DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "debug=smoke", "logger=csv"]
DUMP = ["+callbacks.dump._target_=tests.inject.DumpWeights"]  # every rank's weights at fit end
ENV = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _ranks_agree(job, model: str) -> dict:
    """Rank 0's weights, after checking that rank 1's are the same (gradients averaged: the ranks step
    identically), but for the per-rank state: PCD chains, BatchNorm statistics."""
    ranks = [torch.load(job / f"weights_rank{r}.pt") for r in (0, 1)]
    for key, value in ranks[0].items():
        if key.endswith(("persistent_chain", "num_batches_tracked")) or "running_" in key:
            continue
        assert torch.equal(value, ranks[1][key]), f"{model}: {key} differs between the ranks"
    return ranks[0]


@pytest.mark.parametrize("model", MODELS)
def test_ddp_ranks_train_one_model(model, tmp_path):
    """Every model under DDP (two CPU processes): one run dir, a finished record of world size 2, a
    checkpoint, and the two ranks' weights equal at the end."""
    run = tmp_path / "run"
    out = run_genexp(f"model={model}", fake_data(model), *DDP, *DUMP, "test=false", f"hydra.run.dir={run}", env=ENV)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "finished" and record["world_size"] == 2
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    _ranks_agree(run, model)


def test_multirun_of_ddp_jobs_makes_one_dir_per_job(tmp_path):
    """A Hydra sweep of DDP jobs (the sweep is the model's business nowhere: one model stands for all):
    one dir per job, no stray dir (Lightning #11300: child ranks re-ran the sweep), each job's ranks on
    the job's own overrides."""
    model, sweep = "rbm", tmp_path / "sweep"
    out = run_genexp(
        f"model={model}", *DDP, "seed=1,2", fake_data(model), *DUMP, "test=false", f"hydra.sweep.dir={sweep}",
        multirun=True, cwd=tmp_path, env=ENV,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"], "a stray dir beside the sweep"
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == [f"0_{model}", f"1_{model}"], jobs
    weights = []
    for seed, job in zip((1, 2), jobs, strict=True):
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "finished" and record["world_size"] == 2
        assert (job / ".hydra" / "config.yaml").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
        assert f"seed={seed}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert not (job / ".hydra" / "multirun.yaml").exists() and not list(job.glob("*/multirun.yaml"))
        weights.append(_ranks_agree(job, model))
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "seed=1 and seed=2 trained alike"


def test_a_preempted_slurm_job_requeued_by_the_same_command_continues_its_run(tmp_path):
    """What SLURM does on preemption, without SLURM: SIGTERM mid-run (after submitit's USR2 requeue), then
    the job's same command again with SLURM_RESTART_COUNT=1. The run dir comes from the job id (not a new
    timestamp), so the requeued job finds its last.ckpt and continues it, logging to the same W&B run."""
    cmd = [sys.executable, "-m", "genexp", "model=rbm", "data=fake", "debug=smoke", "trainer.max_epochs=60"]
    env = zygote.cli_env(SLURM_JOB_ID="4242")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "outputs" / "rbm" / "slurm-4242"
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143
    first = json.loads((run_dir / "metrics.json").read_text())
    assert first["status"] == "interrupted" and first["epochs"] < 60
    (first_run,) = run_dir.glob("wandb/offline-run-*")
    run_id = first_run.name.rsplit("-", 1)[1]

    requeued = subprocess.run(
        cmd, env={**env, "SLURM_RESTART_COUNT": "1"}, cwd=tmp_path, capture_output=True, text=True
    )
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert [p.name for p in (tmp_path / "outputs" / "rbm").iterdir()] == ["slurm-4242"], "a second run dir"
    second = json.loads((run_dir / "metrics.json").read_text())
    assert second["status"] == "finished" and second["epochs"] == 60
    assert second["global_step"] == 60 * 2  # every step once: continued, not restarted
    assert list((run_dir / ".hydra").glob("resume_*/config.yaml")), "the first launch's .hydra/ was replaced"
    runs = sorted(run_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and {r.name.rsplit("-", 1)[1] for r in runs} == {run_id}, runs
    assert torch.load(last, weights_only=True)["wandb_run_id"] == run_id


def test_ckpt_path_auto_starts_fresh_without_a_checkpoint(tmp_path):
    out = run_genexp(
        "model=rbm",
        "data=fake",
        "debug=smoke",
        "trainer.max_epochs=1",
        "ckpt_path=auto",
        "logger=csv",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / ".hydra" / "config.yaml").is_file() and not list(tmp_path.glob(".hydra/resume_*"))


def test_the_sweep_dir_is_fixed_before_jobs_are_launched():
    """Resolved once (its ${now:} and random suffix), so a requeued submitit job recomposes the same dir."""
    from genexp.sweep import SweepReport
    from tests.conftest import compose_config

    cfg = compose_config("seed=1", hydra_cfg=True)
    assert "${" in OmegaConf.to_yaml(cfg.hydra.sweep, resolve=False)
    SweepReport().on_multirun_start(cfg)
    frozen = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"]
    assert "${" not in frozen and frozen.startswith("outputs/multirun/"), frozen


def test_the_slurm_preset_renders_matching_tasks_gpus_and_signal(tmp_path, monkeypatch):
    """submitit's own sbatch text for the SLURM preset: one task per GPU from one value, nodes from
    trainer.num_nodes, and the USR2 signal submitit requeues on."""
    import submitit
    from hydra.core.hydra_config import HydraConfig
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    from tests.conftest import compose_config

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool in ("srun", "sbatch"):  # submitit only checks that they exist; nothing is submitted
        (fake_bin / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake_bin / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    cfg = compose_config(
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        hydra_cfg=True,
    )
    monkeypatch.setattr(HydraConfig.instance(), "cfg", HydraConfig.instance().cfg)  # restored afterwards
    HydraConfig.instance().set_config(cfg)  # the launcher's job name interpolates ${hydra:...}
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_"), params.pop("submitit_folder")
    executor = submitit.AutoExecutor(
        folder=tmp_path / "jobs", cluster="slurm", slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())  # the launcher's mapping: other keys get "slurm_"
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    sbatch = executor._executor._make_submission_file_text("python -m genexp", "uid")
    for line in ("--ntasks-per-node=4", "--gpus-per-node=4", "--nodes=2", "--signal=USR2@120", "--partition=gpu"):
        assert f"#SBATCH {line}" in sbatch, sbatch
    assert executor._executor.max_num_timeout == 3


def test_optuna_trials_under_ddp_share_their_parameters_and_a_study(tmp_path):
    """Each trial's ranks train the trial's sampled parameters (rank 1 gets the job's overrides, it does
    not draw its own), and a second process joining the same storage adds trials to the same study."""
    import optuna

    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    common = ["hparams_search=rbm", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "debug=smoke"]
    common += ["data=fake", "logger=csv", "+callbacks.dump._target_=tests.inject.DumpWeights"]
    common += [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=ddp"]
    for n, sweep in ((3, "a"), (1, "b")):
        out = run_genexp(
            *common, f"hydra.sweeper.n_trials={n}", f"hydra.sweep.dir={tmp_path / sweep}", cwd=tmp_path, env=env
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        assert f"{n} of {n} jobs finished" in out.stderr
    for job in sorted((tmp_path / "a").glob("*_rbm")) + sorted((tmp_path / "b").glob("*_rbm")):
        ranks = [torch.load(job / f"weights_rank{r}.pt") for r in (0, 1)]
        assert torch.equal(ranks[0]["rbm.W"], ranks[1]["rbm.W"]), f"{job}: the ranks trained different trials"
    study = optuna.load_study(study_name="ddp", storage=storage)
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 4
