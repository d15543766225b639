"""A warm `python -m genexp` for the tests' CLI runs: one server process per test worker imports what every
run imports (torch, Lightning, Hydra, genexp: ~3 s of each CLI run here, most of a smoke run), then forks
a child per run. The child is a fresh run of the module in all that a run can see: its own pid (and
session, when asked), argv, cwd, environment, sys.path, stdin/stdout/stderr, random seeds and signal
dispositions, the module executed anew as __main__, and a normal interpreter exit (atexit handlers, exit
status, death by signal). What the imports printed to stderr is replayed at the start of each child's
stderr, so a warning a fresh interpreter would print is still seen.

    proc = spawn("genexp", ["model=rbm", ...], cwd=..., env=..., stdout=path, stderr=path, new_session=True)
    proc.pid; proc.poll(); proc.wait(timeout)   # a subprocess.Popen's, returncode < 0: killed by a signal
    done = run("genexp", [...], cwd=..., env=..., timeout=600)   # a subprocess.run(capture_output=True)

GENEXP_TESTS_FRESH=1 makes every run a fresh interpreter again (subprocess.Popen), for comparison.
The server's protocol: one JSON request per line on its stdin, one JSON reply per line on its stdout.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRESH = os.environ.get("GENEXP_TESTS_FRESH") == "1"


def cli_env(**extra: str) -> dict:
    """The environment of every CLI process a test starts: this one's, unbuffered output (a killed run's
    log is complete up to its kill) and one torch thread (test workers share the cores)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


# ---- the server (python -m tests.zygote) -----------------------------------------------------------------
def serve() -> None:
    import signal
    import threading

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    requests = os.fdopen(os.dup(0), "r")
    with tempfile.TemporaryFile() as err:  # what the imports print: replayed to every child
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            import genexp
            import genexp.__main__  # noqa: F401  (torch, Lightning, Hydra, the callbacks, the models)
            import genexp.models  # noqa: F401

            # `python -m genexp` runs genexp/__main__.py as __main__ only: never imported under its own name
            del sys.modules["genexp.__main__"]
            del genexp.__main__
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        preamble = err.read()
    # a fork copies only the forking thread: a lock held by another one would hang the child
    assert threading.active_count() == 1, f"threads after the imports: {threading.enumerate()}"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the test run: the tests decide
    for line in requests:
        req = json.loads(line)
        if "run" in req:
            pid = os.fork()
            if pid == 0:
                requests.close()
                replies.close()
                _child(req["run"], preamble)  # raises SystemExit: the interpreter exits as a run's would
            replies.write(json.dumps({"pid": pid}) + "\n")
        else:
            replies.write(json.dumps({"status": _status(req["pid"], req.get("timeout"))}) + "\n")


def _status(pid: int, timeout: float | None) -> int | None:
    """The exit code of child `pid` (negative: the signal that killed it), None if it still runs after
    `timeout` seconds (None: wait as long as it takes; 0: poll)."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, 0 if end is None else os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= end:
            return None
        time.sleep(0.02)


def _child(run: dict, preamble: bytes) -> None:
    import random
    import runpy
    import signal

    import numpy as np
    import torch

    if run["new_session"]:
        os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a fresh interpreter's (KeyboardInterrupt)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, run["stdout"]), (2, run["stderr"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.write(2, preamble)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115  (line-buffered, as -u and a pipe)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(run["cwd"])
    os.environ.clear()
    os.environ.update(run["env"])
    # sys.path as `python -m` builds it: the cwd first, then PYTHONPATH, then the interpreter's own
    extra = [p for p in run["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [run["cwd"], *extra, *[p for p in sys.path[1:] if p not in extra]]
    random.seed()  # a fresh interpreter's unseeded states, not the server's
    np.random.seed()
    torch.seed()
    sys.argv = ["-m", *run["args"]]
    runpy.run_module(run["module"], run_name="__main__", alter_sys=True)
    raise SystemExit(0)


# ---- the client (the test worker) ------------------------------------------------------------------------
class Server:
    """One warm server: its children run one at a time or at once, as the caller starts and waits on them
    (requests are answered in order; not for two threads at once)."""

    def __init__(self) -> None:
        env = cli_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip
        atexit.register(self.close)

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the zygote server died (exit {self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(30)


_default: Server | None = None


def default_server() -> Server:
    """This test worker's server, started on first use (and again if it died)."""
    global _default
    if _default is None or _default.proc.poll() is not None:
        _default = Server()
    return _default


class Forked:
    """The subprocess.Popen interface the tests use, for a child of a server."""

    def __init__(self, server: Server, pid: int, args: list[str]) -> None:
        self.server, self.pid, self.args, self.returncode = server, pid, args, None

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.ask(pid=self.pid, timeout=timeout)["status"]
            if self.returncode is None and timeout:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode


def spawn(
    module: str, args: list[str], *, cwd: Path, env: dict, stdout: Path, stderr: Path, new_session: bool = False,
    server: Server | None = None, fresh: bool = FRESH,
):  # fmt: skip
    """`python -m module args` with stdout and stderr appended to files: a Forked child of `server` (this
    worker's by default), or with `fresh` a subprocess.Popen of a new interpreter."""
    if fresh:
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            return subprocess.Popen(
                [sys.executable, "-m", module, *args], cwd=cwd, env=env, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=new_session, preexec_fn=_default_sigint,
            )  # fmt: skip
    server = server or default_server()
    run = {"module": module, "args": list(args), "cwd": str(cwd), "env": dict(env), "new_session": new_session}
    pid = server.ask(run={**run, "stdout": str(stdout), "stderr": str(stderr)})["pid"]
    return Forked(server, pid, [sys.executable, "-m", module, *args])


def _default_sigint() -> None:
    """An xdist worker ignores SIGINT, and a Python started with SIGINT ignored never raises
    KeyboardInterrupt: give the child the terminal's default back."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(
    module: str, args: list[str], *, cwd: Path, env: dict, timeout: float, server: Server | None = None,
    fresh: bool = FRESH,
) -> subprocess.CompletedProcess:  # fmt: skip
    """subprocess.run(capture_output=True, text=True) of `python -m module args`, through `spawn`; a run
    still going after `timeout` s is killed (TimeoutExpired)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        proc = spawn(module, args, cwd=cwd, env=env, stdout=out, stderr=err, server=server, fresh=fresh)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
            raise
        return subprocess.CompletedProcess(proc.args, rc, out.read_text(), err.read_text())


if __name__ == "__main__":
    serve()
