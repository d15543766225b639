"""DDP as every genexp model needs it: Lightning's strategy, with `find_unused_parameters` taken from the
model instead of the config."""

from __future__ import annotations

from pytorch_lightning.strategies import DDPStrategy as _LightningDDPStrategy
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel


class DDPStrategy(_LightningDDPStrategy):
    """`find_unused_parameters` from `model.ddp_unused_parameters`: True where an optimizer step runs
    backward through part of the module only (G or D of a GAN, one layer of a DBN's stack) — plain DDP
    rejects that — and False where every step uses every parameter (RBM, classifier): then DDP skips
    the extra graph traversal and its per-run warning that there was nothing to find."""

    def _setup_model(self, model: Module) -> DistributedDataParallel:
        unused = getattr(self.lightning_module, "ddp_unused_parameters", True)
        self._ddp_kwargs["find_unused_parameters"] = bool(unused)
        return super()._setup_model(model)
