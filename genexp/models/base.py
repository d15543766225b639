"""The contracts every genexp model keeps, and the few helpers manual optimization needs.

Callbacks, metrics, `genexp.run` and the tests talk to a model only through these:

- `val_metric` / `val_mode`: the validation metric the model is judged by ("min" or "max"). The best
  checkpoint, the value a run returns to a sweeper and the Optuna direction all come from it; test
  metrics are reported, never optimised.
- `check_data(info)`: what the model asks of its data (shape, classes); a mismatch is a one-line error
  before anything trains.
- `data_kinds`: the kinds of data (`DataInfo.kind`: "image", "vector", "sequence") the model takes.
- `GenerativeModule.sample(n, labels, generator)` (abstract): [n, *sample_shape] in [0, 1] (images
  [n, 1, 28, 28]; piano rolls [n, T, 88]).
- Optional capabilities, found by `hasattr`, each used by one evaluation callback:
  `log_likelihood(x, **options) -> Tensor[B]` in nats, with `likelihood_kind` "exact" | "ais" | "bound"
  and `likelihood_info() -> dict` (LogLikelihood); `filters() -> Tensor[n_in, n_units]` (FilterMosaic);
  `gibbs_chain(x0, n_rows, steps_between, generator)` (MarkovChains); `reconstruct(x)` (Reconstructions);
  `code_posterior(x) -> q(c | x)` (InfoGAN purity). Sequence models (x [B, T, n], lengths [B]):
  `log_likelihood(x, lengths, **options) -> Tensor[B]` (nats per sequence) and
  `predict_frames(x, lengths) -> Tensor[B, T, n]` (p(frame t | frames < t)) (SequenceLikelihood).
"""

from __future__ import annotations

import abc
import math

import pytorch_lightning as pl
import torch

from genexp import loggers
from genexp.data.info import DataInfo
from genexp.rng import gather_rng_states, set_rng_state
from genexp.validate import fail, number

STEP_MEAN = "log_epoch_mean."  # the checkpoint's epoch_sums keys of `log_epoch_mean` values


class GenexpModule(pl.LightningModule):
    """Every model: a validation metric with its direction, and declared data needs."""

    val_metric: str = ""  # e.g. "val/recon_xent"; logged by the model or one of its evaluation callbacks
    val_mode: str = "min"  # "min" | "max"
    n_inputs: int | None = 784  # pixels per image (per frame of a sequence) the first layer expects (None: any)
    data_kinds: tuple[str, ...] = ("image", "vector")  # the DataInfo kinds it trains on
    needs_labels: bool = False  # trains on (x, y) pairs
    n_inputs_key: str | None = None  # the key that sets n_inputs ("model.n_visible"), named on a mismatch
    ddp_unused_parameters: bool = True  # DDP: some step's backward skips some parameters (genexp.ddp)
    min_batch_size: int = 1  # the smallest training batch the model trains on (BatchNorm: 2)
    resizable_buffers: tuple[str, ...] = ()  # state_dict keys whose shape may differ from a checkpoint's (fnmatch)

    def __init__(self) -> None:
        super().__init__()
        self._step_sums: dict[str, list] = {}  # log_epoch_mean: name -> [sum, steps] of this epoch

    def log_epoch_mean(self, name: str, value: torch.Tensor) -> None:
        """Log the epoch mean of a per-step training value, written at the epoch's last batch (under DDP the
        mean over ranks). Cheaper than `self.log(on_epoch=True)` at every step, which makes Lightning redo
        its result bookkeeping per step: ~0.5 ms, 10% of an RBM update on a CPU (experiments/bench).
        A mid-epoch checkpoint keeps every rank's sums (`epoch_sums`), so a resumed epoch's mean is the
        uninterrupted one's."""
        entry = self._step_sums.get(name)
        if entry is None:
            entry = self._step_sums[name] = [torch.zeros((), dtype=torch.float64, device=value.device), 0]
            pending = getattr(self, "_epoch_sums_to_restore", None)
            if pending is not None and pending[0] == self.current_epoch and STEP_MEAN + name in pending[1]:
                total, steps = pending[1].pop(STEP_MEAN + name)  # what the interrupted run had summed
                entry[0] += total
                entry[1] = int(steps)
        entry[0] += value.detach()
        entry[1] += 1

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """At the epoch's last batch (after the callbacks' hooks, before the epoch-end checkpoint),
        log the `log_epoch_mean` values. Subclasses that override it call super()."""
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._log_step_means()

    def on_train_epoch_end(self) -> None:
        self._log_step_means()  # an epoch stopped early (max_time, max_steps)

    def _log_step_means(self) -> None:
        world = self.trainer.world_size
        for name, (total, steps) in self._step_sums.items():
            self.log(name, (total / steps).float(), on_step=False, on_epoch=True, sync_dist=world > 1)
        self._step_sums = {}

    def check_data(self, info: DataInfo, batch_size: int | None = None) -> None:
        """Refuse data this model cannot train on, in one line `<key>=<value>: <what is valid>`."""
        name = type(self).__name__
        if info.kind not in self.data_kinds:
            fail("data", info.name, f"{name} needs {' or '.join(self.data_kinds)} data, not {info.kind} data")
        sequence = info.kind == "sequence"
        n = info.shape[-1] if sequence else math.prod(info.shape)
        if self.n_inputs is not None and n != self.n_inputs:
            unit = "keys per frame" if sequence else "pixels per image"
            where = f"the {unit} of data={info.name} (shape {list(info.shape)})"
            if self.n_inputs_key is not None:
                fail(self.n_inputs_key, self.n_inputs, f"must be {n}, {where}")
            fail("data", info.name, f"{name} needs {self.n_inputs} {unit}, not {n}")
        if self.needs_labels and info.n_classes < 2:
            fail("data", info.name, f"{type(self).__name__} needs labelled data (>= 2 classes)")
        if batch_size is not None:
            number("data.batch_size", batch_size, self.min_batch_size, integer=True, hint=f"for {type(self).__name__}")

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and hasattr(dm, "info"):
            self.check_data(dm.info, getattr(dm, "hparams", {}).get("batch_size"))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Name the class in the checkpoint, so any model's file loads by itself (`genexp.sample`, loglik),
        and keep every rank's random states (`rng_states`, one entry per rank): Lightning saves none.
        Subclasses that save more call super() first. Under DDP every rank gets here (it gathers)."""
        checkpoint["genexp_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        if self._trainer is None:
            return
        checkpoint["rng_states"] = gather_rng_states(self)
        # what Lightning's logging loses on a resume (genexp.loggers): the CSV history's length and the
        # row logged right after this save, and each rank's epoch sums of a mid-epoch save
        if (csv_log := loggers.log_state(self.trainer)) is not None:
            checkpoint["csv_log"] = csv_log
        if run_id := loggers.wandb_run_id(self.trainer):  # a resumed run continues the same W&B run
            checkpoint["wandb_run_id"] = run_id
        mine = loggers.epoch_sums(self.trainer)
        if loggers.mid_epoch(self.trainer):
            mine.update({STEP_MEAN + k: [float(total), float(n)] for k, (total, n) in self._step_sums.items()})
        sums = self._gather_epoch_sums(mine)
        if any(sums):
            checkpoint["epoch_sums"] = {"epoch": self.trainer.current_epoch, "ranks": sums}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """In a resumed fit (load_from_checkpoint has no trainer): keep this rank's random states for
        `on_train_start` (set there, they are the last thing before the first resumed batch, whatever
        the setup and fit-start hooks drew in between) and its epoch sums for `log`; hand the CSV
        history's state to the loggers. Subclasses that load more call super()."""
        if self._trainer is None or self.trainer.state.fn != "fit":
            return
        rank = self.global_rank
        if states := checkpoint.get("rng_states"):
            self._rng_to_restore = states[rank % len(states)]
        if sums := checkpoint.get("epoch_sums"):
            self._epoch_sums_to_restore = (sums["epoch"], dict(sums["ranks"][rank % len(sums["ranks"])]))
        loggers.resume_logs(self.trainer, checkpoint.get("csv_log"))

    def on_train_start(self) -> None:
        """A resumed fit's random states are set here. Subclasses that override it call super()."""
        state = getattr(self, "_rng_to_restore", None)
        if state is not None:
            set_rng_state(state)
            self._rng_to_restore = None

    def log(self, name: str, value, *args, **kwargs) -> None:
        super().log(name, value, *args, **kwargs)
        pending = getattr(self, "_epoch_sums_to_restore", None)
        if pending is not None and self._trainer is not None:
            epoch, sums = pending
            if self.trainer.training and self.trainer.current_epoch == epoch and sums:
                loggers.add_epoch_sum(self, name, sums)  # the first log of `name` after a mid-epoch resume
            elif self.trainer.training:
                self._epoch_sums_to_restore = None  # all added, or another epoch: nothing more to add

    def _gather_epoch_sums(self, mine: dict[str, list[float]]) -> list[dict[str, list[float]]]:
        """Every rank's `genexp.loggers.epoch_sums` (the same keys on every rank), in rank order."""
        world = self.trainer.world_size
        if world == 1:
            return [mine]
        keys = sorted(mine)
        packed = torch.tensor([mine[k] for k in keys], dtype=torch.float64).reshape(len(keys), 2)
        rows = self.all_gather(packed.to(self.device)).cpu()  # [world, n, 2]
        return [{k: row[i].tolist() for i, k in enumerate(keys)} for row in rows]


class GenerativeModule(GenexpModule, metaclass=abc.ABCMeta):
    """A LightningModule trained by manual optimization that can `sample()`.

    - `gen_step` counts generator (or model) updates. Under manual optimization
      `trainer.global_step` counts *optimizer* steps (k + 1 per batch for a GAN with k D-steps),
      so budgets and schedules that mean "updates of the model" read this buffer; it is a buffer,
      so it travels in every checkpoint.
    - noise is seeded per rank (`setup`): with one seed on every rank, each GPU would draw the
      same z and a DDP run would be a 1-GPU run with a bigger bill.
    """

    is_conditional: bool = False  # whether sample() uses `labels`

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.register_buffer("gen_step", torch.zeros((), dtype=torch.long), persistent=True)

    @abc.abstractmethod
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n samples [n, *sample_shape] in [0, 1]; `labels` [n] for conditional models; draws only from
        `generator` when given, so a seeded generator gives the same samples."""

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (1, 28, 28) for the image models; a sequence model's (T, n)."""
        return (1, 28, 28)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # Same weights on every rank (DDP broadcasts them anyway), different noise on each.
        if self.trainer is not None and self.trainer.world_size > 1:
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def set_cosine_lr(self, opt, lr: float, batch_idx: int) -> None:
        """Every parameter group of `opt` at lr * cosine_factor(batch_idx) (a model's `cosine: true`)."""
        for group in opt.param_groups:
            group["lr"] = lr * self.cosine_factor(batch_idx)

    def cosine_factor(self, batch_idx: int, first_epoch: int = 0) -> float:
        """0.5 (1 + cos(pi t / T)): a cosine decay from 1 to 0 over epochs first_epoch .. max_epochs - 1
        (Loshchilov & Hutter 2017), t the batch's position in them; a function of the epoch and batch only,
        so a resumed run continues it exactly."""
        n_batches = max(1, int(self.trainer.num_training_batches))
        total = max(1, (self.trainer.max_epochs - first_epoch) * n_batches)
        t = (self.current_epoch - first_epoch) * n_batches + batch_idx
        return 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0), total) / total))

    def bf16(self, enabled: bool):
        """bf16 autocast on the model's device when `enabled` (a model's training-only option: float32 weights,
        optimizer and evaluation; ~2-3x faster convolutions and matmuls on CPUs with bf16 units)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def step_optimizer(self, opt, loss: torch.Tensor) -> None:
        """zero_grad -> manual_backward -> step: one update of one optimizer."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()

    def step_with_grads(self, opt, params, grads) -> None:
        """One update of `opt` with gradients computed in closed form (no autograd graph, no backward: the
        RBM's CD update). DDP averages gradients in backward hooks, so under DDP they are averaged over
        ranks here, in one all_reduce."""
        world = self.trainer.world_size
        if world > 1:
            flat = torch.cat([g.reshape(-1) for g in grads])
            torch.distributed.all_reduce(flat)
            flat /= world
            grads = [f.view_as(g) for f, g in zip(flat.split([g.numel() for g in grads]), grads, strict=True)]
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # 16-mixed: it unscales at step
        for p, g in zip(params, grads, strict=True):  # bf16 under autocast: the parameter's dtype
            p.grad = (g if scaler is None else g * scaler.get_scale()).to(p.dtype)
        opt.step()


def flat(batch) -> torch.Tensor:
    """Images of a batch (x or (x, y)) as rows [B, n_pixels]."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return x.reshape(len(x), -1)
