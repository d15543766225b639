"""`python -m genexp model=rbm` end to end: the smoke run's pictures and metrics, and 2-process CPU DDP."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # toy sizes on a shared CPU: one thread per process is faster
TINY = (
    "model=rbm",
    "logger=none",
    "callbacks.sample_quality.n_samples=0",
    "model.sample_steps=5",
    "model.plot_every=5",
    "model.ais_chains=10",
    "model.ais_betas=100",
)


class RankDump(pl.Callback):
    """Each rank writes its own parameters and PCD chains at the end of fit (used by the DDP test)."""

    def __init__(self, out: str):
        self.out = out

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, Path(self.out) / f"rank{trainer.global_rank}.pt")


def _check(done):
    assert done.returncode == 0, done.stderr[-3000:]


def test_smoke_run_leaves_pictures_and_ais_metric(genexp_cli, mnist_root, tmp_path):
    run_dir = tmp_path / "run"
    _check(genexp_cli(*TINY, "trainer=smoke", "model.persistent=true", f"hydra.run.dir={run_dir}", env=ONE_THREAD))
    samples = run_dir / "samples"
    for name in ("filters_epoch_001.png", "negative_particles.png", "epoch_001.png"):
        assert (samples / name).stat().st_size > 100, name
    from PIL import Image

    # 20 chains x 10 rows of 28x28 tiles, 1-pixel padding
    assert Image.open(samples / "negative_particles.png").size == (20 * 29 + 1, 10 * 29 + 1)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "test/loglik_ais",
        "test/log_z",
        "test/ais_ess",
        "val/recon_xent",
        "val/pseudo_loglik",
        "val/free_energy_gap",
        "train/cost",
    ):
        assert key in metrics, key
    assert metrics["test/loglik_ais"] < 0 and 1 <= metrics["test/ais_ess"] <= 10
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["pcd_chains"].shape == (1, 128, 500)  # one rank, data.batch_size chains, n_hidden
    # AIS from the command line on the saved checkpoint reproduces the run's own test-end number
    from genexp.metrics.ais import main

    threads = torch.get_num_threads()
    try:
        out = main(
            [
                str(run_dir / "checkpoints" / "last.ckpt"),
                "--chains",
                "10",
                "--betas",
                "100",
                "--seed",
                "0",
                "--threads",
                "1",
                "--json",
                str(tmp_path / "ais.json"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "ais.json").read_text())["loglik"] == out["loglik"]
    assert abs(out["loglik"] - metrics["test/loglik_ais"]) < 1e-3 and abs(out["log_z"] - metrics["test/log_z"]) < 1e-3


def test_ddp_two_cpu_processes_same_weights_different_chains(genexp_cli, mnist_root, tmp_path):
    run_dir = tmp_path / "ddp"
    run_dir.mkdir()
    tests_dir = str(Path(__file__).resolve().parent)
    done = genexp_cli(
        *TINY,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "model.persistent=true",
        "model.k=2",
        "model.n_hidden=32",
        "data.batch_size=16",
        "model.ais_chains=0",
        "model.n_chains_plot=0",
        "callbacks.sample_grid.every_n_epochs=0",
        f"+callbacks.rank_dump._target_={Path(__file__).stem}.RankDump",
        f"+callbacks.rank_dump.out={run_dir}",
        f"hydra.run.dir={run_dir}",
        env={**ONE_THREAD, "PYTHONPATH": tests_dir},
    )
    _check(done)
    r0, r1 = (torch.load(run_dir / f"rank{r}.pt") for r in (0, 1))
    for name in ("W", "hbias", "vbias"):
        assert torch.equal(r0[name], r1[name]), name  # gradients all-reduced: one model
    assert int(r0["gen_step"]) == int(r1["gen_step"]) == 4
    assert r0["persistent_chain"].shape == r1["persistent_chain"].shape == (16, 32)
    assert not torch.equal(r0["persistent_chain"], r1["persistent_chain"])  # noise seeded per rank
    # the checkpoint holds both ranks' chains, each as that rank left it
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    torch.testing.assert_close(ckpt["pcd_chains"][0], r0["persistent_chain"])
    torch.testing.assert_close(ckpt["pcd_chains"][1], r1["persistent_chain"])
    torch.testing.assert_close(ckpt["state_dict"]["W"], r0["W"])
