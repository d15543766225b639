"""Runs that survive: one bad sweep job harms no other, unique run dirs, divergence caught, statuses
recorded truthfully. Slow tier: real CLI runs on the fake data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import MODELS, ROOT, fake_data, run_genexp

pytestmark = pytest.mark.slow
FAST = ["data=fake", "trainer=smoke", "logger=csv"]


def _status(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("launcher", ["basic", "joblib_local"])
def test_one_bad_job_harms_no_other(launcher, tmp_path):
    extra = [] if launcher == "basic" else [f"hydra/launcher={launcher}"]
    out = run_genexp(*extra, "model=rbm", "model.k=1,0,2", *FAST, f"hydra.sweep.dir={tmp_path}", multirun=True)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "genexp: job 1_rbm failed: model.k=0" in out.stderr
    assert "2 of 3 jobs finished" in out.stderr
    good, bad = [tmp_path / "0_rbm", tmp_path / "2_rbm"], tmp_path / "1_rbm"
    for run in good:  # whole artifacts
        m = _status(run)
        assert m["status"] == "finished" and "test/loglik" in m
        assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "samples" / "negative_particles.png").is_file()
    assert _status(bad)["status"] == "failed" and "model.k=0" in _status(bad)["reason"]


def test_two_runs_started_together_get_their_own_dirs(tmp_path):
    cmd = [sys.executable, "-m", "genexp", "model=classifier", *FAST]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert all(p.wait(1800) == 0 for p in procs)
    runs = sorted((tmp_path / "outputs" / "classifier").iterdir())
    assert len(runs) == 2, runs
    for run in runs:
        assert _status(run)["status"] == "finished" and (run / "checkpoints" / "last.ckpt").is_file()
        assert len((run / "csv" / "metrics.csv").read_text().splitlines()) > 1


@pytest.mark.parametrize("model", MODELS)
def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(model, tmp_path):
    fast = [fake_data(model), *FAST[1:]]  # the model's kind of fake data
    out = run_genexp(f"model={model}", *fast, "+callbacks.nan._target_=tests.inject.NaNAt", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 3, out.stderr[-3000:]
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("genexp: error:")]
    assert "diverged at epoch 2" in line and ("train/" in line or "parameter" in line), line
    m = _status(tmp_path)
    assert m["status"] == "diverged" and m["reason"] in line
    assert not any(k.startswith("test/") for k in m)  # no test-time metrics on a diverged model
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] < 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_a_crash_is_recorded_as_failed_with_its_reason(tmp_path):
    out = run_genexp(
        "model=classifier", *FAST, "+callbacks.crash._target_=tests.inject.CrashAt", f"hydra.run.dir={tmp_path}"
    )
    assert out.returncode == 1 and "injected crash at epoch 1" in out.stderr
    m = _status(tmp_path)
    assert m["status"] == "failed" and m["reason"] == "RuntimeError: injected crash at epoch 1"
    assert m["epochs"] == 1  # the record of the last completed epoch


def test_metrics_json_is_strict_json(tmp_path):
    out = run_genexp("model=rbm", *FAST, f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert (ROOT / "conf").is_dir()


def test_test_ckpt_best_scores_the_best_checkpoint_and_keeps_the_last_weights_scores(tmp_path):
    """test_ckpt=best: test/... are best.ckpt's scores (re-scored here by `genexp evaluate`), last/test/...
    the final weights'; the weights are zeroed at the last epoch, so the two differ (the real MNIST: a
    classifier learns something in 2 batches)."""
    from genexp.evaluate import evaluate

    out = run_genexp(
        "model=classifier",
        *FAST[1:],
        "trainer.max_epochs=3",
        "trainer.limit_test_batches=1.0",  # the whole test set, as `genexp evaluate` scores it
        "test_ckpt=best",
        "+callbacks.spoil._target_=tests.inject.SpoilAt",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    m = _status(tmp_path)
    assert m["status"] == "finished" and m["test/ckpt_epoch"] < 2
    assert f"tested             best.ckpt (epoch {m['test/ckpt_epoch']})" in out.stderr + out.stdout
    best = evaluate(tmp_path / "checkpoints" / "best.ckpt", [], tmp_path / "best")
    last = evaluate(tmp_path / "checkpoints" / "last.ckpt", [], tmp_path / "last")
    assert best["test/acc"] == pytest.approx(m["test/acc"]) and last["test/acc"] == pytest.approx(m["last/test/acc"])
    assert m["test/acc"] > m["last/test/acc"]
