"""Every `python -m genexp ...`, `genexp ...` and `python3 dev.py run ...` command in README.md's bash
blocks is run as written, plus `debug=smoke data=fake` (a few batches of fake digits), in a fresh
working directory, and must leave what the README promises. Commands that need hardware this machine
lacks (a GPU, more than 2 devices, a SLURM cluster) are composed with `--cfg all` instead of run, so a
typo in them still fails. A command added to the README is picked up with no edit here. A plain
`python -m genexp model=<m>` is the one exception: the smoke test of tests/test_cli.py runs exactly it
for every model (on the real data, with these checks), so it is not run a second time here.

Placeholders: `outputs/<model>/<run>` is a smoke run of that model made first, `outputs/multirun/<date_time>`
a smoke sweep; `-> FILE` in a command's comment names the file it must write.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import zygote
from tests.conftest import MODELS, ROOT, fake_data

pytestmark = pytest.mark.slow

SMOKE = ["debug=smoke", "data=fake"]


def smoke(args: list[str]) -> list[str]:
    """`debug=smoke` and the fake data of the command's model (tests.conftest.fake_data: the synthetic
    chorales of a sequence model), `data=fake` when it names none."""
    model = next((a.split("=", 1)[1] for a in args if a.startswith("model=")), "")
    return ["debug=smoke", fake_data(model)] if model and "," not in model else list(SMOKE)


TOOL_SMOKE = {"loglik": ["--ais-chains", "10", "--ais-betas", "100"]}  # the tools' own "smoke" sizes
RUN_PLACEHOLDER = re.compile(r"outputs/(\w+)/<run>")
SWEEP_PLACEHOLDER = "outputs/multirun/<date_time>"


def readme_commands() -> list[tuple[str, str]]:
    """(command, its comment) for every genexp command line in a ```bash block of README.md."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition(" #")
            command = command.strip()
            if command.startswith(("python -m genexp", "genexp ", "python3 dev.py run")):
                found.append((command, comment.strip()))
    return found


def missing_hardware(tokens: list[str]) -> str | None:
    """Why this command cannot run on a CPU-only machine with 2 cores, or None."""
    values = dict(t.split("=", 1) for t in tokens if "=" in t)
    if values.get("hydra/launcher") == "slurm":
        return "a SLURM cluster"
    gpu_ddp = values.get("trainer") == "ddp" and values.get("trainer.accelerator") != "cpu"
    if values.get("trainer") == "gpu" or gpu_ddp:
        return "GPUs"
    if int(values.get("trainer.devices", 1)) > 2 or int(values.get("trainer.num_nodes", 1)) > 1:
        return "more devices than this machine has"
    return None


def program(tokens: list[str]) -> tuple[list[str], list[str]]:
    """The executable part of a README command and its arguments."""
    if tokens[:3] == ["python", "-m", "genexp"]:
        return [sys.executable, "-m", "genexp"], tokens[3:]
    if tokens[:3] == ["python3", "dev.py", "run"]:
        return [sys.executable, str(ROOT / "dev.py"), "run"], tokens[3:]
    script = Path(sys.executable).with_name("genexp")  # the console script the package installs
    assert script.is_file(), f"the genexp console script is not installed beside {sys.executable}"
    return [str(script)], tokens[1:]


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """argv in cwd; `python -m genexp` and the `genexp` console script (`genexp.cli:main`, as `python -m
    genexp.cli`; tests/test_tools_cli.py runs the script itself) through the warm server (tests.zygote),
    the others as they are."""
    env = zygote.cli_env()
    if argv[:3] == [sys.executable, "-m", "genexp"]:
        return zygote.run("genexp", argv[3:], cwd=cwd, env=env, timeout=900)
    if argv[0] == str(Path(sys.executable).with_name("genexp")):
        return zygote.run("genexp.cli", argv[1:], cwd=cwd, env=env, timeout=900)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def _ok(done: subprocess.CompletedProcess, command: str) -> None:
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Placeholder -> a real path: smoke runs of the models the README's commands refer to."""
    cache: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("readme_runs")

    def get(placeholder: str) -> Path:
        if placeholder not in cache:
            if placeholder == SWEEP_PLACEHOLDER:
                out = base / "sweep"
                args = ["-m", "model=rbm", "seed=1,2", f"hydra.sweep.dir={out}", "logger=csv"]
            else:
                out = base / RUN_PLACEHOLDER.fullmatch(placeholder).group(1)
                args = [f"model={out.name}", f"hydra.run.dir={out}", "logger=csv"]
            _ok(run([sys.executable, "-m", "genexp", *args, *smoke(args)], base), placeholder)
            cache[placeholder] = out
        return cache[placeholder]

    return get


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent.parent for p in root.rglob(".hydra/config.yaml") if "resume_" not in str(p))


def check_run_dir(run_dir: Path) -> None:
    """What the README's run-dir listing promises."""
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "finished", (run_dir, record.get("reason"))
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    model = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]["choices"]["model"]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert (run_dir / f"{model}.log").is_file(), sorted(p.name for p in run_dir.iterdir())
    if (cfg.get("callbacks") or {}).get("sample_grid"):
        assert list((run_dir / "samples").glob("epoch_*.png")), "no sample grid"
    if (cfg.get("callbacks") or {}).get("loglik"):
        assert (run_dir / "likelihood.json").is_file()
    if (cfg.get("logger") or {}).get("_target_", "").endswith("WandbLogger"):
        assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb")), "no offline W&B run"


NOISE = re.compile(r"warn|deprecat|tip:|💡|litlogger", re.I)


def check_quiet(done: subprocess.CompletedProcess) -> None:
    """No third-party warning, tip or deprecation on the console, and the summary block last on stdout."""
    assert not (noisy := [ln for ln in (done.stdout + done.stderr).splitlines() if NOISE.search(ln)]), noisy
    block = done.stdout[done.stdout.rindex("genexp: finished") :].splitlines()
    assert block[1].lstrip().startswith("run dir") and all(line.startswith("  ") for line in block[1:]), block


def expected_jobs(args: list[str]) -> int:
    if any(a.startswith("hparams_search=") for a in args):
        return int(next(a.split("=")[1] for a in args if a.startswith("hydra.sweeper.n_trials=")))
    n = 1
    for a in args:
        if "=" in a and not a.startswith("hydra."):
            n *= len(a.split("=", 1)[1].split(","))
    return n


ALL_COMMANDS = readme_commands()
MODEL_COMMAND = re.compile(r"python -m genexp model=(\w+)")
# `python -m genexp model=<model>` alone: tests/test_cli.py::test_smoke_run_leaves_artifacts runs exactly
# that for every model (+ trainer=smoke, on the real data), with the checks below; not run twice
COMMANDS = [(c, comment) for c, comment in ALL_COMMANDS if not MODEL_COMMAND.fullmatch(c)]


def test_the_readme_has_commands_of_every_kind():
    kinds = {c.split()[0] if c.startswith("genexp") else " ".join(c.split()[:3]) for c, _ in ALL_COMMANDS}
    assert {"python -m genexp", "genexp", "python3 dev.py run"} <= kinds, kinds
    assert len(ALL_COMMANDS) >= 20


def test_the_readme_model_commands_are_the_smoke_tests_runs():
    """Each plain `python -m genexp model=<m>` names a model of conf/model/, which the smoke test runs."""
    named = [MODEL_COMMAND.fullmatch(c).group(1) for c, _ in ALL_COMMANDS if MODEL_COMMAND.fullmatch(c)]
    assert named and set(named) <= set(MODELS), sorted(set(named) - set(MODELS))


@pytest.mark.parametrize("command, comment", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_readme_command(command, comment, made, tmp_path):
    tokens = shlex.split(command)
    exe, args = program(tokens)
    (tmp_path / "outputs").mkdir()  # as in a clone (outputs/.gitkeep): commands run from the repo root
    used = None  # the run a tool command works on: `<run>` in its comment
    for i, a in enumerate(args):  # placeholders -> runs made first; absolute /tmp paths -> this test's dir
        if SWEEP_PLACEHOLDER in a:
            args[i] = a.replace(SWEEP_PLACEHOLDER, str(made(SWEEP_PLACEHOLDER)))
        elif m := RUN_PLACEHOLDER.search(a):
            used = made(m.group(0))
            args[i] = a.replace(m.group(0), str(used))
        else:
            args[i] = re.sub(r"(?<==)/tmp/", f"{tmp_path}/", a)
    assert not [a for a in args if "<" in a], f"unknown placeholder in {command}"
    trains = exe[-1] in ("genexp", "run") or args[:1] == ["train"]

    if trains and (need := missing_hardware(args)):  # compose it: the config must still be valid
        composable = [a.split(",")[0] if "=" in a else a for a in args if a not in ("-m", "--multirun")]
        done = run([*exe, *composable, "--cfg", "all"], tmp_path)
        _ok(done, command)
        assert "trainer:" in done.stdout, f"needs {need}; composed config:\n{done.stdout[-2000:]}"
        return
    if not trains or "--help" in args or "--cfg" in args:
        done = run([*exe, *args, *TOOL_SMOKE.get(args[0], [])], tmp_path)
        _ok(done, command)
        assert (done.stdout + done.stderr).strip(), f"{command} printed nothing"
        if out := re.search(r"-> (\S+)", comment):
            promised = Path(out.group(1).replace("<run>", str(used)))
            assert promised.is_file(), f"{command} did not write {promised}"
        for flag in ("--out", "--json"):
            if flag in args:
                assert (tmp_path / args[args.index(flag) + 1]).is_file(), f"{command}: no {flag} file"
        return

    multirun = "-m" in args or "--multirun" in args
    extra = smoke(args) if not any(a.startswith("data=") for a in args) else ["debug=smoke"]
    if any(a.startswith("hparams_search=") for a in args):
        extra.append("hydra.sweeper.n_trials=2")
    done = run([*exe, *args, *extra], tmp_path)
    _ok(done, command)
    if "ckpt_path=last" in args:  # a resume: into the run dir it names, its config kept beside the first
        run_dir = Path(next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")))
        assert list((run_dir / ".hydra").glob("resume_*/config.yaml")), "the resume's config was not saved"
        return check_run_dir(run_dir)
    dirs = run_dirs(tmp_path)
    n = expected_jobs(args + extra) if multirun else 1
    assert len(dirs) == n, dirs
    for d in dirs:
        check_run_dir(d)
    if multirun:  # whatever the launcher: one line per job and a count at the end
        assert done.stderr.count(" finished: ") == n and f"{n} of {n} jobs finished" in done.stderr, done.stderr
    else:
        check_quiet(done)
