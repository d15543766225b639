"""DDP as every genexp model needs it: Lightning's strategy, with `find_unused_parameters` taken from the
model, and child ranks that run *this job* of a Hydra multirun.

Why a launcher of our own (Lightning #11300, lightning-hydra-template #393): Lightning starts ranks 1..N-1
with the parent's `sys.argv`. Under `python -m genexp -m seed=1,2`, that is the whole sweep: rank 1 of
job 0 would run a multirun of its own (job 0's and job 1's overrides) and make stray sweep dirs. Here a
child rank gets the job's own overrides (`HydraConfig.overrides.task`: for an Optuna trial these hold
the sampled parameters, so every rank trains the same trial) and the job's resolved output dir as
`hydra.run.dir`, in run mode. The alternatives are slower or narrower: `ddp_spawn` pickles the model
and data into each process and cannot use the script launcher's fast start; torchrun around Hydra
cannot run a sweep whose jobs each want N processes.
"""

from __future__ import annotations

import sys
from unittest import mock

import pytorch_lightning.strategies.launchers.subprocess_script as _script
from pytorch_lightning.strategies import DDPStrategy as _LightningDDPStrategy
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel


def rank_command(local_rank: int) -> tuple[list[str], str]:
    """The command line and working directory of child rank `local_rank` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "genexp", *hc.overrides.task]
    command += [
        f'hydra.run.dir="{hc.runtime.output_dir}"',  # resolved: no second ${now:} or run id
        "hydra.mode=RUN",  # one job, even when an override (hparams_search=...) asks for a multirun
        "hydra.output_subdir=null",  # rank 0 keeps the job's .hydra/
        f"hydra.job.name={hc.job.name}_rank{local_rank}",  # its own log file in the job's dir
    ]
    return command, get_original_cwd()


class _JobLauncher(_script._SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        with mock.patch.object(_script, "_hydra_subprocess_cmd", rank_command):
            super()._call_children_scripts()


class DDPStrategy(_LightningDDPStrategy):
    """Lightning's DDP with two changes:

    - child ranks run this job (module docstring), also inside a multirun;
    - `find_unused_parameters` from `model.ddp_unused_parameters`: True where an optimizer step runs
      backward through part of the module only (G or D of a GAN, one layer of a DBN's stack) — plain
      DDP rejects that — and False where every step uses every parameter (RBM, classifier): DDP then
      skips the extra graph traversal and its warning that there was nothing to find.
    """

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _script._SubprocessScriptLauncher):
            self._launcher = _JobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)

    def _setup_model(self, model: Module) -> DistributedDataParallel:
        unused = getattr(self.lightning_module, "ddp_unused_parameters", True)
        self._ddp_kwargs["find_unused_parameters"] = bool(unused)
        return super()._setup_model(model)
