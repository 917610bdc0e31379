"""The whole platform on one machine: local Apache Kafka, the four services and the gateway.

    python deploy/local/stack.py run      foreground; Ctrl-C stops everything
    python deploy/local/stack.py up       background; returns once every process is ready
    python deploy/local/stack.py down     stop what `up` started
    python deploy/local/stack.py status   what runs, where, and whether it is ready

Each service keeps its SQLite store under .data/ (set <SERVICE>_DATABASE_URL to use
PostgreSQL). Logs go to .data/logs/<name>.log. Every child runs in its own process group and
is stopped with it, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TECHBRIDGE_DATA_DIR", ROOT / ".data"))
LOGS = DATA / "logs"
PIDFILE = DATA / "stack.pid"
KAFKA_PORT = int(os.environ.get("TECHBRIDGE_KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("TECHBRIDGE_KAFKA_CONTROLLER_PORT", "9093"))
READY_TIMEOUT_S = float(os.environ.get("TECHBRIDGE_READY_TIMEOUT_S", "180"))


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    module: str | None  # None: the Kafka broker

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


KAFKA = Component("kafka", KAFKA_PORT, None)
SERVICES = [
    Component("catalog", 8101, "techbridge_catalog"),
    Component("matching", 8102, "techbridge_matching"),
    Component("valuation", 8103, "techbridge_valuation"),
    Component("vouchers", 8104, "techbridge_vouchers"),
    Component("gateway", 8000, "techbridge_gateway"),
]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ready(component: Component) -> tuple[bool, str]:
    if component.module is None:
        return port_open(component.port), "listening" if port_open(component.port) else "down"
    try:
        r = httpx.get(component.url + "/health/ready", timeout=3)
    except httpx.HTTPError:
        return False, "down"
    if r.status_code == 200:
        return True, "ready"
    try:
        checks = r.json().get("checks", {})
        return False, ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok") or "not ready"
    except ValueError:
        return False, f"HTTP {r.status_code}"


class Stack:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def spawn(self, component: Component, cmd: list[str], env: dict[str, str]) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"{component.name}.log", "ab")
        self.children[component.name] = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def check_ports_free(self) -> None:
        busy = [c for c in [KAFKA, *SERVICES] if port_open(c.port)]
        if busy:
            names = ", ".join(f"{c.name} ({c.port})" for c in busy)
            raise SystemExit(f"stack: port already in use: {names}; is the platform already up? (make status / make down)")

    def start(self) -> None:
        self.check_ports_free()
        self.say(f"starting Apache Kafka on 127.0.0.1:{KAFKA.port} (logs: {LOGS}/kafka.log)")
        self.spawn(KAFKA, [str(ROOT / "deploy/kafka/kafka.sh"), "start", str(DATA / "kafka"),
                           str(KAFKA.port), str(KAFKA_CONTROLLER_PORT)], {})
        self.wait_for([KAFKA])
        for c in SERVICES:
            prefix = c.name.upper() + "_"
            # Whatever the caller exported wins (e.g. CATALOG_DATABASE_URL for PostgreSQL).
            env = {
                prefix + "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA.port}",
                prefix + "DATA_DIR": str(DATA),
                prefix + "PORT": str(c.port),
            }
            env = {k: os.environ.get(k, v) for k, v in env.items()}
            self.spawn(c, [sys.executable, "-m", c.module], {"PYTHONUNBUFFERED": "1", **env})
        self.say("starting " + ", ".join(c.name for c in SERVICES) + " ...")
        self.wait_for(SERVICES)

    def wait_for(self, components: list[Component]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(components)
        while pending:
            if self.stopping:
                raise SystemExit(1)
            for c in list(pending):
                proc = self.children[c.name]
                if proc.poll() is not None:
                    raise SystemExit(f"stack: {c.name} exited with {proc.returncode}:\n{tail(c.name)}")
                if ready(c)[0]:
                    pending.remove(c)
            if time.monotonic() > deadline:
                raise SystemExit("stack: not ready in time: " + ", ".join(f"{c.name} ({ready(c)[1]})" for c in pending))
            time.sleep(0.3)

    def stop(self) -> None:
        # Services first, so they leave their consumer groups and stop publishing cleanly;
        # the broker last.
        services = [self.children[c.name] for c in SERVICES if c.name in self.children]
        self.terminate(services)
        if "kafka" in self.children:
            self.terminate([self.children["kafka"]])

    @staticmethod
    def terminate(procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def watch(self) -> None:
        while not self.stopping:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    print(f"stack: {name} exited with {proc.returncode}; stopping everything\n{tail(name)}", file=sys.stderr)
                    return
            time.sleep(0.5)


def tail(name: str, lines: int = 10) -> str:
    try:
        return "\n".join((LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def print_table() -> None:
    print(f"{'component':<11} {'where':<28} state")
    for c in [KAFKA, *SERVICES]:
        where = f"127.0.0.1:{c.port}" if c.module is None else c.url
        print(f"{c.name:<11} {where:<28} {ready(c)[1]}")


def cmd_run(quiet: bool) -> int:
    stack = Stack(quiet)

    def on_signal(signum, _frame):
        stack.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    DATA.mkdir(parents=True, exist_ok=True)
    PIDFILE.write_text(str(os.getpid()))
    try:
        stack.start()
        if not quiet:
            print()
            print_table()
            print(f"\npublic API: http://127.0.0.1:8000   logs: {LOGS}/   stop: Ctrl-C")
        stack.watch()
        return 0 if stack.stopping else 1
    except SystemExit as exc:
        if exc.code not in (None, 0, 1):
            print(exc.code, file=sys.stderr)
        return 1
    finally:
        stack.say("stopping ...")
        stack.stop()
        PIDFILE.unlink(missing_ok=True)
        stack.say("stopped")


def running_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def cmd_up() -> int:
    if running_pid():
        print("the platform is already up")
        print_table()
        return 0
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / "stack.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, __file__, "run", "--quiet"], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT_S + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"the platform did not start:\n{tail('stack', 20)}", file=sys.stderr)
            return 1
        if all(ready(c)[0] for c in [KAFKA, *SERVICES]):
            print_table()
            return 0
        time.sleep(0.5)
    print("the platform did not become ready in time; see make status and .data/logs/", file=sys.stderr)
    return 1


def cmd_down() -> int:
    pid = running_pid()
    if not pid:
        print("the platform is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while running_pid() and time.monotonic() < deadline:
        time.sleep(0.3)
    if running_pid():
        print("the supervisor did not stop in time; killing it", file=sys.stderr)
        os.killpg(pid, signal.SIGKILL)
        PIDFILE.unlink(missing_ok=True)
    print("stopped")
    return 0


def cmd_status() -> int:
    pid = running_pid()
    print(f"supervisor: {'running, pid %d' % pid if pid else 'not running'}")
    print_table()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.command == "run":
        return cmd_run(args.quiet)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command]()


if __name__ == "__main__":
    raise SystemExit(main())
