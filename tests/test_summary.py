"""genexp.summary and experiments/make_readme.py on fake run dirs (no training, fast)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genexp import summary as S

ROOT = Path(__file__).resolve().parents[1]


def fake_run(d: Path, overrides: list[str], metrics: dict | None, seed: int | None = None) -> Path:
    """A run dir as genexp/run.py leaves it; metrics None: it crashed before writing metrics.json."""
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"model": {"_target_": "genexp.models.RBM"}, "seed": seed})
    )
    if metrics is not None:
        prov = {
            "git_commit": "1b67dc0abcdef0123456789",
            "git_dirty": False,
            "feature_net": {"name": "mnist_cnn", "sha256": "ab12cd34ef56ab12cd34ef56"},
            "config": ".hydra/config.yaml",
            "overrides": overrides,
        }
        (d / "metrics.json").write_text(json.dumps({"status": "finished", "provenance": prov, **metrics}))
    return d


def fake_sweep(tmp_path: Path) -> Path:
    """k=1 x seeds 1,2,3 (finished), k=2 x seeds 1,2 (finished) + seed 3 failed + seed 4 missing."""
    sweep = tmp_path / "multirun"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    i = 0
    for k, seed, a in [(1, 1, 1.0), (1, 2, 2.0), (1, 3, 4.0), (2, 1, 10.0), (2, 2, 12.0)]:
        m = {"test/a": a, "test/b": 2 * a, "val/c": -a, "train/cost": 0.1, "wall_time_s": 10.0 * seed}
        fake_run(sweep / f"{i}_rbm", ["model=rbm", f"model.k={k}", f"seed={seed}", "hydra.verbose=true"], m, seed)
        i += 1
    failed = fake_run(sweep / f"{i}_rbm", ["model=rbm", "model.k=2", "seed=3"], {"wall_time_s": 3.0}, 3)
    (failed / "metrics.json").write_text(json.dumps({"status": "failed", "reason": "loss is nan | diverged"}))
    fake_run(sweep / f"{i + 1}_rbm", ["model=rbm", "model.k=2", "seed=4"], None, 4)
    return sweep


def test_grouping_drops_seed_and_stats_are_exact(tmp_path):
    runs = S.find_runs([fake_sweep(tmp_path)])
    assert [r["name"] for r in runs] == [f"{i}_rbm" for i in range(7)]
    summary = S.summarize(runs)
    assert summary["metric_keys"] == ["test/a", "test/b", "val/c"]  # train/ left out by default
    g1, g2 = summary["groups"]
    assert (g1["label"], g1["n"], g1["n_failed"]) == ("model=rbm model.k=1", 3, 0)
    assert g1["overrides"] == ["model=rbm", "model.k=1"]  # seed= and hydra.* dropped
    assert (g2["label"], g2["n"], g2["n_failed"]) == ("model=rbm model.k=2", 2, 2)
    a = g1["metrics"]["test/a"]
    assert a["n"] == 3 and a["mean"] == pytest.approx(7 / 3) and a["std"] == pytest.approx(statistics.stdev([1, 2, 4]))
    assert g2["metrics"]["test/b"] == {"mean": 22.0, "std": pytest.approx(math.sqrt(8)), "n": 2}
    assert g1["wall_time_s"]["mean"] == pytest.approx(20.0)
    assert [j["seed"] for j in summary["jobs"]] == [1, 2, 3, 1, 2, 3, 4]
    assert [j["status"] for j in summary["jobs"]][-2:] == ["failed", "missing"]
    md = S.to_markdown(summary)
    assert "2.333 ± 1.528" in md and "22 ± 2.828" in md
    assert "failed: loss is nan \\| diverged" in md and "| 6_rbm | `model=rbm model.k=2` | 4 | missing |" in md
    assert "`1b67dc0abc`" in md and "(clean)" in md and "mnist_cnn sha256 `ab12cd34ef56`" in md


def test_metrics_option_order_and_single_run(tmp_path, capsys):
    run = fake_run(tmp_path / "run", ["model=rbm", "seed=7"], {"test/a": 1.23456789, "test/b": 2.0}, 7)
    assert S.main([str(run), "--metrics", "test/b,test/a"]) == 0
    out = capsys.readouterr().out
    assert out.index("`test/b`") < out.index("`test/a`") and "| `test/a` | 1.235 |" in out  # no std when n = 1
    assert "`model=rbm`" in out and "[run](" in out


def test_failed_and_missing_jobs_exit_1_and_json(tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    out_md, out_json = tmp_path / "res" / "results.md", tmp_path / "res" / "results.json"
    rc = S.main([str(sweep), "--out", str(out_md), "--json", str(out_json), "--title", "RBM k"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1] == "genexp.summary: 2 of 7 jobs did not finish: 5_rbm, 6_rbm"
    assert out_md.read_text().startswith("# RBM k\n") and "| 5_rbm |" in out_md.read_text()
    data = json.loads(out_json.read_text())
    assert set(data) >= {"title", "provenance", "groups", "jobs"}
    assert data["provenance"]["configs"][0] == "../multirun/0_rbm/.hydra/config.yaml"  # relative to the results
    assert data["jobs"][0]["dir"] == "../multirun/0_rbm"
    assert data["groups"][1]["metrics"]["test/a"]["n"] == 2
    assert sorted(p.name for p in out_md.parent.iterdir()) == ["results.json", "results.md"]  # no temp file left


def test_nan_is_written_as_null(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0_x", ["seed=1"], {"test/a": 1.0}, 1)
    (sweep / "0_x" / "metrics.json").write_text('{"status": "finished", "test/a": NaN, "val/b": Infinity}')
    out = tmp_path / "s.json"
    assert S.main([str(sweep / "0_x"), "--json", str(out)]) == 0
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert data["groups"][0]["label"] == "defaults"
    assert data["groups"][0]["metrics"]["test/a"] == {"mean": None, "std": None, "n": 1}
    assert data["jobs"][0]["metrics"] == {"test/a": None, "val/b": None}


@pytest.mark.parametrize("case", ["missing path", "no runs", "bad metrics.json"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    path = tmp_path / "nope"
    if case == "no runs":
        path.mkdir()
    elif case == "bad metrics.json":
        path = fake_run(tmp_path / "run", ["seed=1"], {"test/a": 1.0}, 1)
        (path / "metrics.json").write_text('{"status": "finis')
    assert S.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("genexp.summary: error: ") and str(path) in err


def test_cli_subprocess_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "genexp.summary", str(tmp_path / "x")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.splitlines() == [
        f"genexp.summary: error: {tmp_path / 'x'}: no such directory"
    ]
    h = subprocess.run([sys.executable, "-m", "genexp.summary", "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "--metrics" in h.stdout


def test_write_atomic_leaves_no_temp_on_error(tmp_path, monkeypatch):
    target = tmp_path / "out.md"
    target.write_text("old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(S.os, "replace", boom)
    with pytest.raises(OSError):
        S.write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.md"]


# --- experiments/make_readme.py ---------------------------------------------------------------------------


def _make_readme():
    spec = importlib.util.spec_from_file_location("make_readme", ROOT / "experiments" / "make_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


README = "# project\n\nintro\n\n<!-- models:begin -->\n| stale |\n<!-- models:end -->\n\nmore text\n"


def test_make_readme_renders_rows_and_check_detects_staleness(tmp_path, capsys):
    mr = _make_readme()
    study = tmp_path / "experiments" / "rbm"
    study.mkdir(parents=True)
    (tmp_path / "README.md").write_text(README)
    assert S.main([str(fake_sweep(tmp_path)), "--json", str(study / "results.json")]) == 1
    (study / "samples.png").write_bytes(b"png")
    (study / "study.yaml").write_text(
        yaml.safe_dump(
            {
                "order": 10,
                "rows": [
                    {
                        "model": "RBM k=2",
                        "preset": "experiment=rbm_k2",
                        "results": "results.json",
                        "group": "model=rbm model.k=2",
                        "metrics": [{"key": "test/a", "label": "a", "fmt": ".2f"}, {"key": "test/b", "label": "b"}],
                        "anchor": "11 (Someone 2008)",
                        "pictures": {"samples": "samples.png"},
                    },
                    {"model": "RBM k=1", "results": "results.json", "metrics": [{"key": "test/a", "fmt": ".1f"}]},
                ],
            }
        )
    )
    later = tmp_path / "experiments" / "later"
    later.mkdir()
    (later / "study.yaml").write_text('order: 20\nrows: [{model: "GAN | big", preset: "model=gan", results: r.json}]\n')
    capsys.readouterr()
    assert mr.main(["--root", str(tmp_path), "--check"]) == 1
    diff = capsys.readouterr().out
    assert "-| stale |" in diff and "+| RBM k=2 |" in diff
    assert mr.main(["--root", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    head, rest = text.split("<!-- models:begin -->\n")
    table, tail = rest.split("<!-- models:end -->")
    assert head == "# project\n\nintro\n\n" and tail == "\n\nmore text\n"
    rows = table.splitlines()
    assert rows[0].startswith("| model |") and len(rows) == 5
    assert rows[2] == (
        "| RBM k=2 | `experiment=rbm_k2` | a **11.00 ± 1.41 (n=2)**; b **22 ± 2.828 (n=2)** | 11 (Someone 2008) "
        "| 15 s | [samples](experiments/rbm/samples.png) |"
    )
    assert rows[3] == "| RBM k=1 | — | test/a **2.3 ± 1.5 (n=3)** | — | 20 s | — |"  # the first group
    assert rows[4] == "| GAN \\| big | `model=gan` | not run yet | — | — | — |"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    assert mr.main(["--root", str(tmp_path), "--check"]) == 0
    (study / "study.yaml").write_text("rows: [{model: x, results: results.json, group: nope}]\n")
    capsys.readouterr()
    assert mr.main(["--root", str(tmp_path), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("make_readme: error: ") and "no group 'nope'" in err and len(err.splitlines()) == 1


def test_make_readme_needs_markers(tmp_path, capsys):
    (tmp_path / "README.md").write_text("# no markers\n")
    assert _make_readme().main(["--root", str(tmp_path), "--check"]) == 2
    assert "<!-- models:begin -->" in capsys.readouterr().err


def test_a_resumed_run_is_grouped_by_its_latest_launch(tmp_path):
    """A run resumed with a longer budget finished under the resume's overrides (.hydra/resume_<time>/, the
    newest of them), not the first launch's; ckpt_path= names the resume, not a setting."""
    d = fake_run(tmp_path / "0_ssgan", ["model=ssgan", "trainer.max_epochs=90", "seed=1"], {"test/error": 0.02}, 1)
    for stamp, epochs in [("2026-11-27_08-04-42", 300), ("2026-11-26_10-00-00", 120)]:
        r = d / ".hydra" / f"resume_{stamp}"
        r.mkdir()
        overrides = ["model=ssgan", f"trainer.max_epochs={epochs}", "seed=1", "ckpt_path=last"]
        (r / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (r / "config.yaml").write_text(yaml.safe_dump({"seed": 1}))
    run = S.load_run(d)
    assert run["group"] == "model=ssgan trainer.max_epochs=300"
    assert run["config_path"].endswith("resume_2026-11-27_08-04-42/config.yaml")
    fresh = S.load_run(fake_run(tmp_path / "1_ssgan", ["model=ssgan", "seed=2"], {"test/error": 0.03}, 2))
    assert fresh["group"] == "model=ssgan" and fresh["config_path"].endswith(".hydra/config.yaml")
