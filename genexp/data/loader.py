"""The stateful mini-batch loader of the in-memory datamodules (`genexp.data.datamodule`): batches by index
over tensors already on their device, DDP sharding without copies, and a position that a checkpoint saves
and a resume continues from."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class BatchLoader:
    """Shuffled mini-batches by index over tensors that already sit on their device.

    Shuffling is a function of (seed, epoch) so every rank draws the same permutation and takes its
    own slice `perm[rank::world_size]`: the DDP sharding a DistributedSampler would do, without copies.

    Resumable (Lightning's `_Stateful` protocol: `state_dict` / `load_state_dict`): the epoch whose
    permutation is being served, how many of its batches were trained on, and the dynamic-binarization
    generator (one state per rank: `gather` collects them under DDP). A loaded state makes the next
    pass serve the rest of that epoch, at the next batch of the same permutation, with the same pixels.
    Lightning 2.x saves it in every checkpoint (`loops.fit_loop.state_dict.combined_loader`) but loads
    it only in some resumes (see `ImageDataModule.state_dict`), so the datamodule keeps a copy too.

    `epoch_fn` (the trainer's current epoch) picks each pass's permutation; without it (plain
    iteration) every complete or abandoned pass is followed by the next epoch's. `trained_fn` (the
    trainer's finished batches of the epoch) caps the saved position: a batch served but interrupted
    before it trained is served again. A pass begun while `isolate()` is true (a sanity check) draws
    from a copy of the dynamic stream.
    """

    def __init__(
        self,
        x,
        y,
        batch_size,
        shuffle,
        drop_last,
        seed=0,
        rank=0,
        world_size=1,
        dynamic: torch.Generator | None = None,
        epoch_fn: Callable[[], int] | None = None,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
        isolate: Callable[[], bool] | None = None,
        trained_fn: Callable[[], int] | None = None,
    ):
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size, self.dynamic = seed, rank, world_size, dynamic
        self.epoch_fn, self.gather, self.isolate, self.trained_fn = epoch_fn, gather, isolate, trained_fn
        self.epoch = 0  # the pass whose permutation is served (or next served, before any pass)
        self.served = 0  # batches of that pass already yielded
        self._started = False  # whether pass `epoch` has begun
        self._resume = False  # a loaded state: the next pass continues pass `epoch` after `served`

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        per_rank = n // self.world_size  # equal shard sizes keep DDP ranks in lock-step
        return idx[self.rank :: self.world_size][:per_rank]

    def __len__(self) -> int:
        per_rank = len(self.x) // self.world_size
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def _begin_pass(self) -> int:
        """Choose this pass's epoch; return the first batch to serve (> 0 only when resuming)."""
        epoch = self.epoch_fn() if self.epoch_fn is not None else None
        if self._resume:
            self._resume = False
            if epoch is None or epoch == self.epoch:
                return self.served  # the loaded pass, after the batches already trained on
        if epoch is None:
            epoch = self.epoch + 1 if self._started else self.epoch
        self.epoch, self.served, self._started = epoch, 0, True
        return 0

    def __iter__(self):
        # a generator: nothing runs (no epoch is chosen) until the first batch is asked for, so an
        # iter() that is never consumed (Lightning calls iter() to check a loader) changes nothing
        start = self._begin_pass()
        idx = self._indices().to(self.x.device)
        stream = self.dynamic
        if stream is not None and self.isolate is not None and self.isolate():
            stream = torch.Generator(device=stream.device).set_state(stream.get_state())
        for b in range(start, len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.x[sel]  # float already in ImageDataModule (converted once in setup)
            if x.dtype == torch.uint8:
                x = x.float().div_(255.0)
            if stream is not None:  # resample binary pixels every time an image is served
                x = torch.bernoulli(x, generator=stream)
            self.served = b + 1  # counted before the yield: a checkpoint taken while batch b trains includes it
            yield x, self.y[sel]

    # ---- resuming (Lightning's _Stateful protocol) ---------------------------------------------------
    def position(self) -> dict:
        """{"epoch", "served"}: where the next batch comes from. With `trained_fn`, `served` counts the
        batches the trainer finished (a batch served but interrupted before it trained is served again)."""
        served = self.served if self.trained_fn is None else min(self.served, int(self.trained_fn()))
        return {"epoch": self.epoch, "served": served}

    def state_dict(self) -> dict:
        """{"epoch", "served", "dynamic": uint8 [world_size, L] generator states (one row per rank) or None}.
        Under DDP every rank must call it (it gathers): Lightning does, in `trainer.save_checkpoint`."""
        state = {**self.position(), "dynamic": None}
        if self.dynamic is not None:
            mine = self.dynamic.get_state()
            state["dynamic"] = self.gather(mine) if self.gather is not None and self.world_size > 1 else mine[None]
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue where `state` left: the next pass serves the rest of the saved epoch (if the trainer is
        still in that epoch), and the dynamic-binarization stream goes on from this rank's saved state."""
        self.epoch, self.served = int(state["epoch"]), int(state["served"])
        self._started = self._resume = True
        states = state.get("dynamic")
        if self.dynamic is not None and states is not None:
            self.dynamic.set_state(states[self.rank % len(states)].cpu().clone())
