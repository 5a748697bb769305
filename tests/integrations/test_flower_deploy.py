"""Flower for real: flower-superlink + two flower-supernode processes + `flwr run`, encrypted FedAvg.

Starts ``flower-superlink --insecure`` and two ``flower-supernode --insecure`` processes on
127.0.0.1 (free ports, a private FLWR_HOME), submits examples/flower_app with ``flwr run`` for
3 rounds of encrypted FedAvg (clients hold the key; the ServerApp has only the public context)
and compares the final model, decrypted here, with plaintext FedAvg on the same partitions.
Every process is started in its own process group and that group is ended afterwards, also on
failure. About a minute; marked slow (``make test-distributed``).
"""
from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from he_ml import load_context  # noqa: E402
from he_ml.aggregation import GradientAggregator  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "examples" / "flower_app"
ROUNDS = 3
NODES = 2
BIN = Path(sys.executable).parent


def _load(name: str):
    """A module of the example app (imported from its folder; the app is not installed)."""
    sys.path.insert(0, str(APP))
    try:
        return importlib.import_module(f"he_ml_flower_app.{name}")
    finally:
        sys.path.remove(str(APP))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exe(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} not found next to {sys.executable} or on PATH (pip install '.[flower]')")
    return found


class Processes:
    """Processes started in their own process groups; stop() ends exactly those groups."""

    def __init__(self, folder: Path, env: dict) -> None:
        self.folder, self.env, self.procs = folder, env, []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        try:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    cwd=self.folder, start_new_session=True)
        finally:
            log.close()
        proc.name = name
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        out = []
        for p in self.procs:
            text = (self.folder / f"{p.name}.log").read_text(errors="replace")
            out.append(f"--- {p.name} (exit {p.poll()}) ---\n{text[-3000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for p in reversed(self.procs):
                try:
                    os.killpg(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + wait
            for p in self.procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass


def _wait_port(port: int, procs: Processes, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if any(p.poll() is not None for p in procs.procs):
                break
            time.sleep(0.3)
    raise AssertionError(f"the SuperLink did not listen on port {port}:\n{procs.logs()}")


@pytest.mark.slow
def test_encrypted_fedavg_on_real_superlink_and_supernodes(tmp_path):
    keys = _load("keys")
    task = _load("task")
    secret_path, public_path = keys.write_keys(str(tmp_path / "keys"), "paillier", NODES)
    home = tmp_path / "flwr_home"
    home.mkdir()
    env = dict(os.environ, FLWR_HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONUNBUFFERED="1")
    link_port = _free_port()
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "he-ml-local"\n\n'
        f'[superlink.he-ml-local]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n')
    procs = Processes(tmp_path, env)
    try:
        procs.start("superlink", [_exe("flower-superlink"), "--insecure", "--host", "127.0.0.1",
                                  "--port", str(link_port), "--disable-runtime-dependency-installation"])
        _wait_port(link_port, procs)
        for k in range(NODES):
            procs.start(f"supernode{k}", [
                _exe("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                "--port", str(_free_port()),
                "--node-config", f"partition-id={k} num-partitions={NODES} he-ml-context='{secret_path}'"])
        output = tmp_path / "final_model.blob"
        run = subprocess.run(
            [_exe("flwr"), "run", str(APP), "he-ml-local", "--stream", "--run-config",
             f"num-server-rounds={ROUNDS} min-nodes={NODES} public-context='{public_path}' output='{output}'"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=170)
        log = run.stdout + run.stderr
        assert run.returncode == 0, f"flwr run failed:\n{log[-4000:]}\n{procs.logs()}"
        assert log.count(f"Received {NODES} results and 0 failures") == ROUNDS, log[-4000:]
        assert output.exists(), f"the ServerApp wrote no model:\n{log[-4000:]}"
        # nothing ran in-process: the work was done by separate SuperNode processes
        assert all(p.poll() is None for p in procs.procs), procs.logs()
    finally:
        procs.stop()

    total = output.read_bytes()
    ctx = load_context(Path(secret_path).read_bytes())
    assert GradientAggregator.count_of(total) == NODES
    model = GradientAggregator(ctx, max_value=task.MAX_VALUE).decrypt(total, count=NODES)
    partitions, (x_te, y_te) = task.load_partitions(NODES)
    w_ref, b_ref = task.plain_fedavg(partitions, ROUNDS)
    acc_enc = task.accuracy(model["w"], float(model["b"][0]), x_te, y_te)
    acc_plain = task.accuracy(w_ref, b_ref, x_te, y_te)
    assert abs(acc_enc - acc_plain) <= 0.01, (acc_enc, acc_plain)
    assert acc_plain > 0.9  # the reference itself learned something
    # Paillier with 24 fractional bits: each averaged weight is off by <= 2^-25 per round; local
    # training then moves that error by a Lipschitz factor < 2 per round on this data, so 3 rounds
    # stay far below 1e-5 (a wrong sum, e.g. a dropped client, is off by ~1e-1).
    assert np.max(np.abs(model["w"] - w_ref)) < 1e-5
