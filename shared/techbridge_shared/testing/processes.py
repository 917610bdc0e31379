"""Run a service as a real OS process, as `make run` does, and wait for its health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], port: int, log_path: Path, cwd: Path | None = None):
        self.module = module
        self.env = {**os.environ, **env}
        self.port = port
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: bool = True, timeout: float = 60) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=self.env, cwd=self.cwd,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.wait_health("/health/ready" if ready else "/health/live", timeout)
        return self

    def wait_health(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}: {self.tail()}")
            try:
                r = httpx.get(self.url + path, timeout=5)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{self.module} not healthy at {path} after {timeout}s: {last}; {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, as a crash."""
        self._signal(signal.SIGKILL)

    def terminate(self, timeout: float = 20) -> None:
        self._signal(signal.SIGTERM, timeout)

    def _signal(self, sig: int, timeout: float = 20) -> None:
        signal_group(self.process, sig, timeout)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def signal_group(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Signal a child's whole process group and wait; SIGKILL it if it outlives the timeout."""
    if not process or process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def run_to_exit(module: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a process that is expected to exit (e.g. refuse to start) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", module], env={**os.environ, **env},
        capture_output=True, text=True, timeout=timeout,
    )
