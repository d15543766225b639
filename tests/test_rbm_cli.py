"""`python -m genexp model=rbm` under 2-process CPU DDP on fake data: one model on both ranks, a PCD
chain per rank in the checkpoint and back on its rank on resume, and the RBM's evaluation callbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

DDP = (
    "model=rbm",
    "data=fake",
    "trainer=smoke",
    "logger=csv",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    # as conf/trainer/ddp.yaml: each rank keeps its own buffers (the PCD chains) instead of rank 0's
    "trainer.strategy={_target_:pytorch_lightning.strategies.DDPStrategy,broadcast_buffers:false}",
    "trainer.limit_train_batches=4",
    "model.persistent=true",
    "model.k=2",
    "model.n_hidden=32",  # > 20: log Z by AIS (eval_size of trainer=smoke: 10 chains, 100 betas)
    "model.sample_steps=5",
    "eval_size.every_n_epochs=1",
)


class RankDump(pl.Callback):
    """Each rank writes its PCD chains at its first training batch and its state_dict at the end of fit
    (rank<r>.pt in `out`); loaded by the CLI through +callbacks.rank_dump."""

    def __init__(self, out: str):
        self.out, self.first = out, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first is None:
            self.first = pl_module.rbm.persistent_chain.detach().cpu().clone()

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"first_chain": self.first, "state": state}, Path(self.out) / f"rank{trainer.global_rank}.pt")


def _ddp_run(genexp_cli, run_dir: Path, *extra: str) -> tuple[dict, dict]:
    run_dir.mkdir()
    done = genexp_cli(
        *DDP,
        *extra,
        f"+callbacks.rank_dump._target_={Path(__file__).stem}.RankDump",
        f"+callbacks.rank_dump.out={run_dir}",
        f"hydra.run.dir={run_dir}",
        env={"PYTHONPATH": str(Path(__file__).resolve().parent)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tuple(torch.load(run_dir / f"rank{r}.pt") for r in (0, 1))


@pytest.mark.slow
def test_ddp_two_cpu_processes_one_model_a_chain_per_rank(genexp_cli, tmp_path):
    r0, r1 = _ddp_run(genexp_cli, tmp_path / "ddp", "trainer.max_epochs=1")
    s0, s1 = r0["state"], r1["state"]
    for name in ("rbm.W", "rbm.hbias", "rbm.vbias"):
        assert torch.equal(s0[name], s1[name]), name  # gradients all-reduced: one model
    assert int(s0["gen_step"]) == int(s1["gen_step"]) == 4
    assert s0["rbm.persistent_chain"].shape == s1["rbm.persistent_chain"].shape == (16, 32)  # batch x n_hidden
    assert not torch.equal(s0["rbm.persistent_chain"], s1["rbm.persistent_chain"])  # noise seeded per rank
    # the AIS base rate comes from the whole training split on every rank
    assert torch.equal(s0["data_sum"], s1["data_sum"]) and float(s0["data_count"]) > 0
    # the checkpoint holds both ranks' chains, each as that rank left it
    last = tmp_path / "ddp" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["pcd_chains"].shape == (2, 16, 32)
    torch.testing.assert_close(ckpt["pcd_chains"][0], s0["rbm.persistent_chain"])
    torch.testing.assert_close(ckpt["pcd_chains"][1], s1["rbm.persistent_chain"])
    torch.testing.assert_close(ckpt["state_dict"]["rbm.W"], s0["rbm.W"])

    # the RBM's evaluation (conf/eval/rbm.yaml) ran on rank 0: pictures, monitors, the AIS log-likelihood
    run = tmp_path / "ddp"
    for name in ("filters_epoch_001.png", "negative_particles.png", "epoch_001.png"):
        assert (run / "samples" / name).stat().st_size > 100, name
    # 20 chains x 10 rows of 28x28 tiles, 1-pixel padding
    assert Image.open(run / "samples" / "negative_particles.png").size == (20 * 29 + 1, 10 * 29 + 1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["status"] == "finished"
    for key in ("test/loglik", "val/loglik", "test/log_z", "test/ais_ess", "val/recon_xent", "val/pseudo_loglik"):
        assert key in metrics, key
    assert "val/free_energy_gap" in metrics and "train/cost" in metrics
    assert metrics["test/loglik"] < 0 and 1 <= metrics["test/ais_ess"] <= 10
    loglik = json.loads((run / "likelihood.json").read_text())["test/loglik"]
    assert loglik["mean"] == pytest.approx(metrics["test/loglik"], rel=1e-6) and loglik["n"] == 80
    assert loglik["binarization"] == "stochastic" and loglik["options"]["ais_chains"] == 10

    # resuming: each rank continues from its own saved chains
    q0, q1 = _ddp_run(genexp_cli, tmp_path / "resume", "trainer.max_epochs=2", f"ckpt_path={last}")
    torch.testing.assert_close(q0["first_chain"], ckpt["pcd_chains"][0])
    torch.testing.assert_close(q1["first_chain"], ckpt["pcd_chains"][1])
    assert int(q0["state"]["gen_step"]) == int(q1["state"]["gen_step"]) == 8
