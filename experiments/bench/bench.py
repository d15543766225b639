"""Training speed of every model: genexp (through Lightning, as `python -m genexp model=<m>` trains it)
against a plain PyTorch loop of the same maths (experiments/bench/plain.py), on the real MNIST.

For every conf/model/*.yaml (and, for the fine-tuned DBN forms, a second row for the fine-tuning
phase, `model.pretrain_epochs=0`), each measurement runs in a fresh child process with the same
thread count (so each has its own peak memory), genexp and plain interleaved `--repeats` times:

  genexp  the model, datamodule and trainer from the composed config (its batch size, its trainer
          preset with the always-on callbacks: checkpointing, divergence guard; CSV logging as every
          run has; no progress bar, no validation, no evaluation callbacks, which act at epoch ends);
  plain   plain.py's loop for the model's class, starting from the same initial weights, the data
          already float on the device.

After `--warmup` batches, the clock runs for `--seconds` or to the end of the epoch, synchronised on a
GPU. Reported: images/s (median over repeats), the ratio genexp/plain, peak memory (CPU: peak RSS of
the child; GPU: torch.cuda.max_memory_allocated). Writes results.{md,json} to `--out`.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/bench/bench.py --threads 1           # this CPU
    .venv/bin/python experiments/bench/bench.py --device cuda --out experiments/gpu/results
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF = HERE.parents[1] / "conf"
sys.path.insert(0, str(HERE))
PLAIN = {  # model class -> its plain loop (plain.py); a model without one is reported as such
    "RBM": "cd_rbm",
    "DBN": "cd_rbm",
    "DeepAutoencoder": "cd_rbm",
    "DBNClassifier": "cd_rbm",
    "Classifier": "supervised",
    "CDCGAN": "cdcgan",
}


def rows() -> list[dict]:
    out = []
    for path in sorted(CONF.glob("model/*.yaml")):
        out.append({"model": path.stem, "phase": "train", "overrides": []})
        if "finetune_lr:" in path.read_text():  # a fine-tuned DBN form: its second phase too
            out[-1]["phase"] = "pretrain layer 0"
            out.append({"model": path.stem, "phase": "fine-tune", "overrides": ["model.pretrain_epochs=0"]})
    return out


# ---- one measurement (child process) ---------------------------------------------------------------------
def child(spec: dict) -> dict:
    import hydra
    import pytorch_lightning as pl
    import torch
    from hydra import compose, initialize_config_dir

    torch.set_num_threads(spec["threads"])
    cuda = spec["device"] == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    tmp = tempfile.mkdtemp(prefix="bench_")
    overrides = [f"model={spec['model']}", *spec["overrides"], f"paths.output_dir={tmp}", "logger=none"]
    overrides += ["trainer=gpu", "data.on_device=true"] if cuda else ["trainer=cpu"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    pl.seed_everything(cfg.seed, verbose=False)
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    batch = int(cfg.data.batch_size)
    warm, seconds = spec["warmup"], spec["seconds"]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if spec["impl"] == "genexp":
        from genexp.loggers import CSVLogger

        class Clock(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, b, batch_idx):
                if batch_idx == warm - 1:
                    sync()
                    self.t0 = time.perf_counter()
                elif batch_idx >= warm:
                    last = batch_idx + 1 >= trainer.num_training_batches
                    if last or time.perf_counter() - self.t0 >= seconds:
                        sync()
                        self.n, self.dt = batch_idx + 1 - warm, time.perf_counter() - self.t0
                        trainer.should_stop = True

        clock = Clock()
        callbacks = [hydra.utils.instantiate(cfg.callbacks[k]) for k in ("checkpoint", "divergence_guard")]
        trainer = hydra.utils.instantiate(
            cfg.trainer,
            logger=[CSVLogger(save_dir=tmp, name="csv", version="")],
            callbacks=[*callbacks, clock],
            default_root_dir=tmp,
            limit_val_batches=0,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, datamodule=dm)
        n, dt = clock.n, clock.dt
    else:
        import plain

        dm.setup("fit")
        x, y = dm.split_tensors("train")  # float in [0, 1]: converted once, before the clock
        device = torch.device(spec["device"])
        x, y, model = x.to(device), y.to(device), model.to(device)
        name = "finetune" if spec["phase"] == "fine-tune" else PLAIN.get(type(model).__name__)
        if name is None:
            raise RuntimeError(f"no plain loop for {type(model).__name__} in experiments/bench/plain.py yet")
        loop = getattr(plain, name)
        nominal = len(x) // batch  # the schedules' length: one epoch

        def timed(data):
            for i, b in enumerate(data):
                if i == warm:
                    sync()
                    t0 = time.perf_counter()
                elif i > warm and time.perf_counter() - t0 >= seconds:
                    break
                yield b
            sync()
            timed.n, timed.dt = i - warm, time.perf_counter() - t0

        loop(model, timed(plain.batches(x, y, batch, cfg.seed)), batch, nominal)
        n, dt = timed.n, timed.dt
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"images_per_s": n * batch / dt, "batches": n, "seconds": dt, "peak_mib": peak, "batch": batch}


def measure(spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the table -------------------------------------------------------------------------------------------
def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    return {
        "images_per_s": statistics.median(r["images_per_s"] for r in ok) if ok else None,
        "all": [round(r["images_per_s"], 1) for r in ok],
        "peak_mib": max(r["peak_mib"] for r in ok) if ok else None,
        "error": next((r["error"] for r in runs if "error" in r), None if runs else "not measured"),
        "batch": next((r["batch"] for r in ok), None),
    }


def report(todo: list[dict], results: list[dict], args, device: str) -> str:
    """results.md's text (and .json beside it), from what was measured so far."""
    table = []
    for row, res in zip(todo, results, strict=True):
        entry = {**row, "genexp": summarise(res["genexp"]), "plain": summarise(res["plain"])}
        g, p = entry["genexp"]["images_per_s"], entry["plain"]["images_per_s"]
        entry["ratio"] = g / p if g and p else None
        table.append(entry)
    memory = (
        "torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak RSS of the process (Python, torch, data)"
    )
    lines = [
        f"# Training speed: genexp vs a plain PyTorch loop ({args.device})",
        "",
        f"{device}, {args.torch}{args.threads} thread(s), MNIST 50k training split, each model's default "
        f"batch size; {args.warmup} warm-up batches, then {args.seconds:g} s or one epoch per measurement, median "
        f"of {args.repeats} interleaved repeats, each in its own process. Peak memory: {memory}.",
        "",
        "| model | phase | batch | genexp images/s | plain images/s | genexp / plain | peak MiB genexp | peak MiB plain"
        " |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in table:
        g, p = e["genexp"], e["plain"]
        cells = [e["model"], e["phase"], g["batch"] or p["batch"] or "?"]
        cells += ["—" if v is None else f"{v:.0f}" for v in (g["images_per_s"], p["images_per_s"])]
        cells += ["—" if e["ratio"] is None else f"**{e['ratio']:.3f}**"]
        cells += ["—" if v is None else f"{v:.0f}" for v in (g["peak_mib"], p["peak_mib"])]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    ratios = [e["ratio"] for e in table if e["ratio"] is not None]
    if ratios:
        lines += ["", f"Lowest genexp / plain: {min(ratios):.3f} (bar: >= 0.95)."]
    missing = [f"- {e['model']} ({e['phase']}) {i}: {e[i]['error']}" for e in table for i in ("genexp", "plain")]
    missing = [
        m for m, e in zip(missing, [e[i] for e in table for i in ("genexp", "plain")], strict=True) if e["error"]
    ]
    if missing:
        lines += ["", "Not measured or failed:", *missing]
    text = "\n".join(lines) + "\n"
    from genexp.record import write_atomic, write_json

    stem = "results" if args.device == "cpu" else "bench"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        {"args": {k: str(v) for k, v in vars(args).items()}, "device": device, "rows": table}, args.out / f"{stem}.json"
    )
    write_atomic(args.out / f"{stem}.md", text)
    return text


LOG_LINE = re.compile(r"^repeat (\d+) (\S+) +(.+?) +(genexp|plain) +(\{.*\})$")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5, help="batches before the clock starts")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement (at most one epoch)")
    ap.add_argument("--models", nargs="*", help="conf/model names (default: all)")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--from-log", type=Path, help="no measuring: the table of an interrupted run's printed lines")
    ap.add_argument("--device-name", help="with --from-log: the device the log was measured on")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    import torch

    args.torch = "" if args.from_log else f"torch {torch.__version__}, "  # from a log: in --device-name
    todo = [r for r in rows() if not args.models or r["model"] in args.models]
    results = [{"genexp": [], "plain": []} for _ in todo]
    if args.from_log:
        index = {(r["model"], r["phase"]): i for i, r in enumerate(todo)}
        for line in args.from_log.read_text().splitlines():
            if m := LOG_LINE.match(line):
                rep, model, phase, impl, value = m.groups()
                results[index[(model, phase)]][impl].append(ast.literal_eval(value))
        print(report(todo, results, args, args.device_name or "?"))
        return
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or platform.machine()
    keep = ("device", "threads", "warmup", "seconds")
    for rep in range(args.repeats):  # interleaved: a slow patch of a shared machine hits both
        for row, res in zip(todo, results, strict=True):
            for impl in ("genexp", "plain"):
                r = measure({**row, "impl": impl, **{k: getattr(args, k) for k in keep}})
                res[impl].append(r)
                print(f"repeat {rep} {row['model']:<16} {row['phase']:<17} {impl:<7}", r, flush=True)
                report(todo, results, args, device)  # what was measured so far survives an interrupted run
    print(report(todo, results, args, device))


if __name__ == "__main__":
    main()
