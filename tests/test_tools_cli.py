"""The `genexp` command (genexp.cli): every subcommand's --help, one-line errors with exit code 2, and
`sample` / `loglik` / `train` end to end on a tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from genexp.cli import main
from tests import zygote
from tests.conftest import ROOT, build_model, compose_config

SUBCOMMANDS = ["train", "sample", "loglik", "evaluate", "summary"]
GENEXP = Path(sys.executable).parent / "genexp"  # the console script of pyproject's [project.scripts]


@pytest.fixture(scope="module")
def rbm_run(tmp_path_factory) -> Path:
    """A tiny RBM run (12 hidden units: exact log Z) with its run dir as Hydra leaves it."""
    from genexp.run import run

    out = tmp_path_factory.mktemp("rbm_run")
    cfg = compose_config("model=rbm", "model.n_hidden=12", "data=fake", "trainer=smoke", "logger=csv", "test=false")
    cfg.paths.output_dir = str(out)
    run(cfg)
    (out / ".hydra").mkdir()
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    return out


@pytest.fixture(scope="module")
def cdcgan_ckpt(tmp_path_factory) -> Path:
    model = build_model("cdcgan", "model.nz=8", "model.ngf=4", "model.ndf=4", "model.ngfc=16", "model.ndfc=16")
    path = tmp_path_factory.mktemp("cdcgan") / "gan.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "genexp_class": "genexp.models.cdcgan.CDCGAN",
            "hyper_parameters": dict(model.hparams),
        },
        path,
    )
    return path


def _exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    return info.value.code


@pytest.mark.parametrize("argv", [["--help"], *([sub, "--help"] for sub in SUBCOMMANDS)], ids=["genexp", *SUBCOMMANDS])
def test_every_subcommand_has_help(argv, capsys):
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    try:
        assert _exit(argv) == 0
    finally:  # `train --help` runs Hydra in this process: leave no Hydra state to later tests
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    out = capsys.readouterr().out
    assert "usage" in out.lower() or "Powered by Hydra" in out
    if argv[0] == "summary":
        assert "usage: genexp summary" in out
    elif argv[0] != "train":
        assert "usage: genexp" in out
    else:
        assert "model:" in out.replace(" ", "") or "== Configuration groups ==" in out


def _bad_cases(tmp: Path, run_dir: Path, gan: Path) -> dict[str, tuple[list[str], str]]:
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    text = tmp / "notes.txt"
    text.write_text("not a checkpoint\n")
    blocked = tmp / "a_file"
    blocked.write_text("x")
    return {  # name: (argv, a fragment of the one error line)
        "no command": ([], "a command is required"),
        "unknown command": (["smaple"], "unknown command 'smaple'"),
        "sample missing ckpt": (["sample", str(tmp / "nope.ckpt"), "--n", "4"], "does not exist"),
        "sample non-number n": (["sample", ckpt, "--n", "ten"], "'ten' is not a whole number"),
        "sample n 0": (["sample", ckpt, "--n", "0"], "0 must be >= 1"),
        "sample no n": (["sample", ckpt], "the following arguments are required: --n"),
        "sample old syntax": (["sample", ckpt, "n=10", "out=x.npz"], "unknown argument 'n=10'"),
        "sample unwritable out": (["sample", ckpt, "--n", "4", "--out", str(blocked / "s.npz")], "cannot write in"),
        "sample digit 12": (["sample", ckpt, "--n", "4", "--digit", "12"], "invalid choice: 12"),
        "sample text file": (["sample", str(text), "--n", "4"], "corrupted or truncated checkpoint"),
        "loglik missing ckpt": (["loglik", str(tmp / "nope.ckpt")], "does not exist"),
        "loglik non-number n": (["loglik", ckpt, "--n", "1e3"], "'1e3' is not a whole number"),
        "loglik n 0": (["loglik", ckpt, "--n", "0"], "0 must be >= 1"),
        "loglik split bogus": (["loglik", ckpt, "--split", "bogus"], "invalid choice: 'bogus'"),
        "loglik ais betas 1": (["loglik", ckpt, "--ais-betas", "1"], "1 must be >= 2"),
        "loglik unwritable out": (["loglik", ckpt, "--out", str(blocked / "l.json")], "cannot write in"),
        "loglik cdcgan": (["loglik", str(gan)], "CDCGAN has no log_likelihood: "),
        "loglik text file": (["loglik", str(text)], "corrupted or truncated checkpoint"),
        "evaluate missing ckpt": (["evaluate", str(tmp / "nope.ckpt")], "does not exist"),
        "evaluate text file": (["evaluate", str(text)], "corrupted or truncated checkpoint"),
        "summary no dir": (["summary", str(tmp / "nowhere")], "no such directory"),
    }


BAD = [
    "no command", "unknown command", "sample missing ckpt", "sample non-number n", "sample n 0", "sample no n",
    "sample old syntax", "sample unwritable out", "sample digit 12", "sample text file", "loglik missing ckpt",
    "loglik non-number n", "loglik n 0", "loglik split bogus", "loglik ais betas 1", "loglik unwritable out",
    "loglik cdcgan", "loglik text file", "evaluate missing ckpt", "evaluate text file", "summary no dir",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments_give_one_error_line_and_exit_2(case, rbm_run, cdcgan_ckpt, tmp_path, capsys):
    argv, fragment = _bad_cases(tmp_path, rbm_run, cdcgan_ckpt)[case]
    before = sorted(p.name for p in rbm_run.iterdir())
    assert _exit(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    sub = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    prefix = f"genexp {sub}" if sub else "genexp"
    assert lines[0].startswith(f"{prefix}: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in rbm_run.iterdir()) == before  # nothing written into the run dir


def test_sample_writes_into_the_run_dir_by_default(rbm_run, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # never the current directory
    assert _exit(["sample", str(rbm_run / "checkpoints" / "last.ckpt"), "--n", "5", "--seed", "1"]) == 0
    data = np.load(rbm_run / "samples_5.npz")
    assert data["images"].shape == (5, 1, 28, 28) and data["images"].dtype == np.float32
    assert data["labels"].tolist() == [-1] * 5  # an unconditional model
    assert list(tmp_path.iterdir()) == []
    # a checkpoint outside a run dir: the file goes beside it
    lone = tmp_path / "lone" / "m.ckpt"
    lone.parent.mkdir()
    lone.write_bytes((rbm_run / "checkpoints" / "last.ckpt").read_bytes())
    assert _exit(["sample", str(lone), "--n", "3", "--batch-size", "2"]) == 0
    assert np.load(lone.parent / "samples_3.npz")["images"].shape == (3, 1, 28, 28)


def _exact_loglik(model, x: torch.Tensor) -> float:
    """mean(-F(x)) - log Z with log Z summed over all 2^n_hidden hidden states, float64."""
    W, b, c = (t.detach().double() for t in (model.rbm.W, model.rbm.vbias, model.rbm.hbias))
    n_hidden = W.shape[1]
    h = ((torch.arange(2**n_hidden)[:, None] >> torch.arange(n_hidden)) & 1).double()  # [2^H, H]
    log_z = torch.logsumexp(h @ c + F.softplus(h @ W.T + b).sum(1), 0)
    x = x.reshape(len(x), -1).double()
    neg_f = x @ b + F.softplus(x @ W + c).sum(1)
    return float(neg_f.mean() - log_z)


def test_loglik_is_exact_for_a_tiny_rbm(rbm_run, capsys):
    import hydra

    from genexp.metrics.likelihood import binarized, digest
    from genexp.sample import load_model

    ckpt = rbm_run / "checkpoints" / "last.ckpt"
    assert _exit(["loglik", str(ckpt), "--n", "50"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test/loglik = ") and "exact" in line and "n/a" not in line, line
    result = json.loads((rbm_run / "loglik_test.json").read_text())
    assert result["kind"] == "exact" and result["n"] == 50 and result["split"] == "test"
    dm = hydra.utils.instantiate(OmegaConf.load(rbm_run / ".hydra" / "config.yaml").data, _convert_="all")
    dm.setup("test")
    x = binarized(dm.split_tensors("test", raw=True)[0][:50])
    assert abs(result["mean"] - _exact_loglik(load_model(ckpt), x)) < 1e-6
    assert result["sha256"] == digest(x)  # the same bits as the LogLikelihood callback scores


def test_loglik_prints_n_a_for_a_bound_that_is_not_finite(rbm_run, monkeypatch, capsys):
    from genexp.models.rbm import RBM

    info = RBM.likelihood_info
    monkeypatch.setattr(RBM, "likelihood_info", lambda self: {**info(self), "log_z_lo": float("-inf")})
    out = rbm_run / "ll_inf.json"
    assert _exit(["loglik", str(rbm_run / "checkpoints" / "last.ckpt"), "--n", "10", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert "log_z_lo n/a (-inf: log(Z - 3 sigma) of AIS" in line
    assert " -inf" not in line.replace("(-inf:", "")
    result = json.loads(out.read_text())
    assert result["info"]["log_z_lo"] is None and "log_z_lo" in result["notes"]


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    env = zygote.cli_env()
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_console_script_train_and_module_entry_points(rbm_run, tmp_path):
    if not GENEXP.is_file():
        pytest.skip(f"{GENEXP} not installed (pip install -e .)")
    run_dir = tmp_path / "run"
    proc = _run(
        str(GENEXP), "train", "model=classifier", "data=fake", "trainer=smoke", "logger=csv",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    ckpt = str(rbm_run / "checkpoints" / "last.ckpt")
    proc = _run(sys.executable, "-m", "genexp.sample", ckpt, "--n", "4", "--out", str(tmp_path / "s.npz"), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.load(tmp_path / "s.npz")["images"].shape == (4, 1, 28, 28)
    proc = _run(str(GENEXP), "loglik", ckpt, "--split", "val", "--n", "20", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("val/loglik = "), proc.stderr[-3000:]
    assert json.loads((rbm_run / "loglik_val.json").read_text())["n"] == 20
    proc = _run(sys.executable, "-m", "genexp.loglik", str(tmp_path / "nope.ckpt"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("genexp.loglik: error: "), proc.stderr
