"""The RNN-RBM on the Bach chorales beside a plain RBM and the independent-Bernoulli model on the same test
frames (issue 14), with the paper's JSB Chorales figures: what the recurrence is worth.

    python experiments/rnnrbm/table.py     # after run.sh: -> experiments/rnnrbm/table.md, table.json,
                                           #    sample_piano_roll.png, sample_0.mid

Rows (test split of data=bach_chorales: the same pieces, the same frames):
- RNN-RBM: its run's test/loglik_step (AIS for every frame's RBM, or exact) and test/frame_acc, both from
  the evaluation layer (genexp.callbacks.SequenceLikelihood), outputs/studies/rnnrbm.
- RBM 88-150 on the frames (model=rbm, data.frames=true), outputs/studies/rnnrbm_rbm: test/loglik (AIS,
  per frame = per time step: the RBM ignores the past); its frame accuracy here, with the rule the RNN-RBM
  uses (mean-field visible marginals thresholded at 0.5, the same for every frame).
- Independent Bernoulli: each key's add-one frequency on the training frames (closed form).
- Random guessing: every key a fair coin, 88 log 0.5 = -61.0 nats.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from genexp.callbacks.pictures import PianoRolls, piano_roll_image  # noqa: E402
from genexp.data.piano import write_midi  # noqa: E402
from genexp.metrics.sequence import (  # noqa: E402
    RANDOM_GUESS_PER_STEP,
    bernoulli_loglik,
    bernoulli_marginals,
    frame_accuracy,
)
from genexp.record import git_state, write_atomic, write_json  # noqa: E402
from genexp.sample import load_model  # noqa: E402
from genexp.viz import save_png  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from make_readme import wall_time  # noqa: E402  (the model table's format: "39 s", "7 min")

RNNRBM_RUN = ROOT / "outputs" / "studies" / "rnnrbm"
RBM_RUN = ROOT / "outputs" / "studies" / "rnnrbm_rbm"
PAPER = "Boulanger-Lewandowski et al. 2012, JSB Chorales"


def _metrics(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    if m.get("status") != "finished":
        raise SystemExit(f"table.py: {run} did not finish (status {m.get('status')}): run experiments/rnnrbm/run.sh")
    return m


def _datamodule(run: Path, frames: bool):
    """The run's data config (same cache, same split), as frames or as pieces."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml").data
    cfg.frames = frames
    dm = hydra.utils.instantiate(cfg, _convert_="all")
    dm.setup()
    return dm


@torch.no_grad()
def rbm_frame_accuracy(run: Path, test_x: torch.Tensor, test_len: torch.Tensor, steps: int = 25) -> float:
    """A frame model's next-frame prediction is the same for every frame: its mean-field visible marginals
    (v = sigm(b + W sigm(c + W^T v)) from v = sigm(b), `steps` iterations) thresholded at 0.5."""
    rbm = load_model(run / "checkpoints" / "last.ckpt").rbm
    v = torch.sigmoid(rbm.vbias)[None]
    for _ in range(steps):
        v = rbm.propdown(rbm.propup(v)[1])[1]
    pred = (v[0] > 0.5).expand_as(test_x)
    return frame_accuracy(pred, test_x, test_len)


def main() -> None:
    rnn, rbm = _metrics(RNNRBM_RUN), _metrics(RBM_RUN)
    seq = _datamodule(RNNRBM_RUN, frames=False)
    test_x, test_len = seq.split_tensors("test")
    train_x, train_len = seq.split_tensors("train")
    train_frames = train_x[torch.arange(train_x.shape[1])[None] < train_len[:, None]]
    test_frames = test_x[torch.arange(test_x.shape[1])[None] < test_len[:, None]]
    p = bernoulli_marginals(train_frames)
    indep_ll = float(bernoulli_loglik(p, test_frames).mean())
    indep_acc = frame_accuracy((p > 0.5).float().expand_as(test_x), test_x, test_len)
    frames_dm = _datamodule(RBM_RUN, frames=True)
    assert len(frames_dm.split_tensors("test")[0]) == len(test_frames), "the RBM was scored on other frames"
    lik = json.loads((RNNRBM_RUN / "likelihood.json").read_text())["test/loglik_step"]
    rows = [
        {
            "model": "RNN-RBM 88-150, RNN 100 (`experiment=rnnrbm_bach`)",
            "loglik_step": rnn["test/loglik_step"],
            "frame_acc": rnn["test/frame_acc"],
            "how": f"AIS per frame ({lik['options']['ais_chains']} chains x {lik['options']['ais_betas']} "
            f"temperatures, mean ESS {lik['info'].get('ais_ess_mean', float('nan')):.1f}); "
            "prediction: mean-field marginals > 0.5",
            "paper": "-6.27",
            "seconds": rnn["wall_time_s"],
        },
        {
            "model": "RBM 88-150 on the frames, CD-15 (`model=rbm data.frames=true`)",
            "loglik_step": rbm["test/loglik"],
            "frame_acc": rbm_frame_accuracy(RBM_RUN, test_x, test_len),
            "how": "AIS (100 chains x 14500 temperatures); prediction: mean-field marginals > 0.5, every frame",
            "paper": "—",
            "seconds": rbm["wall_time_s"],
        },
        {
            "model": "Independent Bernoulli per key (closed form, add-one frequencies of the training frames)",
            "loglik_step": indep_ll,
            "frame_acc": indep_acc,
            "how": "exact; prediction: frequency > 0.5 (no key is on that often: no note predicted)",
            "paper": "—",
            "seconds": None,
        },
        {
            "model": "Random guessing (every key a fair coin)",
            "loglik_step": RANDOM_GUESS_PER_STEP,
            "frame_acc": None,
            "how": "88 log 0.5",
            "paper": "-61.00",
            "seconds": None,
        },
    ]
    n_pieces = {k: len(seq.split_tensors(k)[0]) for k in ("train", "val", "test")}
    lines = [
        f"Bach chorales, test split: {n_pieces['test']} pieces, {len(test_frames)} frames (train/val/test "
        f"{n_pieces['train']}/{n_pieces['val']}/{n_pieces['test']} pieces). Git commit "
        f"`{git_state().get('git_commit', '?')[:10]}`.",
        "",
        f"| model | test log-lik. per time step (nats) | frame accuracy | how | paper ({PAPER}) "
        "| wall time, evaluation included |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        acc = "—" if r["frame_acc"] is None else f"{r['frame_acc']:.1%}"
        wall = wall_time(r["seconds"])
        lines.append(f"| {r['model']} | **{r['loglik_step']:.2f}** | {acc} | {r['how']} | {r['paper']} | {wall} |")
    lines += [
        "",
        "The paper's figures are on the published JSB Chorales (382 chorales, its own split and encoding), "
        "these on music21's four-part chorales encoded here (genexp/data/piano.py) and split by piece with "
        "seed 0: the split and the encoding differ, so the numbers compare only roughly. An AIS estimate of "
        "log Z is unbiased in Z, so the log-likelihoods by AIS are optimistic on average.",
    ]
    write_atomic(HERE / "table.md", "\n".join(lines) + "\n")
    write_json({"rows": rows, "pieces": n_pieces, "test_frames": len(test_frames)}, HERE / "table.json")
    # the run's final samples (the PianoRolls callback's seed and count: the run's last picture and MIDI
    # files) drawn again from its checkpoint, as a picture and the first as MIDI, beside the table
    cfg = OmegaConf.load(RNNRBM_RUN / ".hydra" / "config.yaml").callbacks.piano_rolls
    callback = PianoRolls(n=cfg.n, midi=cfg.midi, bpm=cfg.bpm, seed=cfg.seed)
    rolls = callback.rolls(load_model(RNNRBM_RUN / "checkpoints" / "last.ckpt"))
    save_png(piano_roll_image(rolls)[0], HERE / "sample_piano_roll.png")
    write_midi(rolls[0].numpy(), HERE / "sample_0.mid", bpm=cfg.bpm)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
