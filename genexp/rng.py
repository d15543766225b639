"""Every process's global random states (torch CPU and CUDA, numpy, python) as plain tensors and numbers,
for checkpoints that load with torch.load(weights_only=True): Lightning checkpoints none of them, so a
resumed run would draw other noise than the uninterrupted one. Under DDP each rank's state is gathered
(`gather_rng_states`) and each rank gets its own back (`set_rng_state`, GenexpModule.on_load_checkpoint)."""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch


def rng_state() -> dict:
    """This process's global random states, as plain tensors and numbers (a checkpoint that loads with
    torch.load(weights_only=True)): torch CPU, torch CUDA (every device), numpy, python."""
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, words, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # CUDA only once this process has used it (until then its generators are untouched; asking
        # would initialise CUDA in a CPU run)
        "torch.cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (CUDA states only for the devices this process sees)."""
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available():
        for i, s in enumerate(state.get("torch.cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(w) for w in p["state"].tolist()), p["gauss"]))


def _pack(state: dict) -> torch.Tensor:
    """`rng_state()` as one uint8 vector (so that ranks can all_gather it); `_unpack` inverts it."""
    n, p = state["numpy"], state["python"]
    numbers = torch.tensor(
        [n["pos"], n["has_gauss"], n["cached_gaussian"], p["version"], p["gauss"] is not None, p["gauss"] or 0.0],
        dtype=torch.float64,
    )
    parts = [state["torch"], *state["torch.cuda"], n["keys"], p["state"], numbers]
    return torch.cat([t.detach().cpu().contiguous().view(torch.uint8).flatten() for t in parts])


def _unpack(packed: torch.Tensor, like: dict) -> dict:
    """The state packed in `packed`, laid out as `like` (this rank's own state: every rank has the same
    torch, numpy and python versions and devices, so the same sizes)."""
    packed, out = packed.cpu(), {}

    def take(t: torch.Tensor) -> torch.Tensor:
        nonlocal packed
        size = t.numel() * t.element_size()
        chunk, packed = packed[:size].clone(), packed[size:]
        return chunk.view(t.dtype).reshape(t.shape)

    out["torch"] = take(like["torch"])
    out["torch.cuda"] = [take(t) for t in like["torch.cuda"]]
    keys, words = take(like["numpy"]["keys"]), take(like["python"]["state"])
    pos, has_gauss, cached, version, has_pgauss, pgauss = take(torch.zeros(6, dtype=torch.float64)).tolist()
    out["numpy"] = {"keys": keys, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": cached}
    out["python"] = {"version": int(version), "state": words, "gauss": pgauss if has_pgauss else None}
    return out


def gather_rng_states(module: pl.LightningModule) -> list[dict]:
    """Every rank's `rng_state()`, in rank order (under DDP: an all_gather every rank must join)."""
    mine = rng_state()
    world = module.trainer.world_size if module._trainer is not None else 1
    if world == 1:
        return [mine]
    rows = module.all_gather(_pack(mine).to(module.device))  # [world, L]
    return [_unpack(row, mine) for row in rows]
