"""Each Dockerfile's steps, carried out without a container engine, and the result run.

The builder stage's COPY and `uv sync` instructions are executed as written (uv offline, from
the cache `make install` filled) in a temporary /app; then everything the runtime stage does
not copy is removed, so what is left is what the image holds. In it, with an environment that
has nothing but the process's own settings: every module of the process and of the shared
library imports, and migrate.py brings a fresh store to head. A dependency missing from the
process's pyproject.toml, a migrations directory the image lacks, or a Dockerfile step that
no longer works fails here instead of in a registry build.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy_support import DEPLOY, ROOT, env_prefix, processes
from test_dockerfiles import copy_sources, instructions, stages

DOCKER = DEPLOY / "docker"


def uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = shutil.which("uv") or (str(local) if local.exists() else None)
    if not found:
        pytest.skip("uv is not installed")
    return found


def ignored(name: str) -> set[str]:
    patterns = (DOCKER / f"{name}.Dockerfile.dockerignore").read_text().split()
    return {p.removeprefix("**/") for p in patterns if p.startswith("**/") and p != "**"}


def copy_into(src: Path, dest: Path, skip: set[str]) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True,
                        ignore=lambda _d, names: [n for n in names if any(fnmatch.fnmatch(n, p) for p in skip)])
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


def build(name: str, app: Path) -> None:
    """Run the builder stage's COPY and uv steps with /app at `app`."""
    builder = stages(instructions(DOCKER / f"{name}.Dockerfile"))[0]
    skip = ignored(name)
    env = {**os.environ}
    workdir = app
    for keyword, rest in builder:
        if keyword == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", rest):
                env[k] = v.replace("/app", str(app))
        elif keyword == "WORKDIR":
            workdir = Path(rest.replace("/app", str(app)))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = [a for a in shlex.split(rest) if not a.startswith("--")]
            for src in sources:
                target = workdir / dest if not dest.startswith("/") else Path(dest.replace("/app", str(app)))
                if dest.endswith("/"):
                    target = target / Path(src.rstrip("/")).name if not src.endswith("/") else target
                copy_into(ROOT / src, target, skip)
        elif keyword == "RUN" and "uv sync" in rest:
            # Same result, faster here: link from the cache, skip compiling third-party code.
            env.update(UV_LINK_MODE="hardlink", UV_COMPILE_BYTECODE="0")
            command = re.sub(r"--mount=\S+\s*", "", rest)
            for part in command.split("&&"):
                argv = shlex.split(part)
                if argv[0] == "uv":
                    argv = [uv(), *argv[1:], "--offline", "--quiet"]
                elif argv[0] == "python":
                    argv = [sys.executable, *argv[1:]]
                done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
                if done.returncode and argv[0] == uv() and ("offline" in done.stderr or "network" in done.stderr):
                    pytest.skip(f"a package is not in uv's cache (run `make install` first): {done.stderr[-300:]}")
                assert done.returncode == 0, f"{' '.join(argv)}\n{done.stderr}"


def keep_only_runtime(name: str, app: Path) -> None:
    """Delete what the runtime stage does not copy from the builder or the context."""
    runtime = stages(instructions(DOCKER / f"{name}.Dockerfile"))[-1]
    kept = set()
    for keyword, rest in runtime:
        if keyword == "COPY":
            for src in copy_sources(rest):
                if "--from=builder" in rest:
                    kept.add(src.removeprefix("/app/"))
                else:
                    kept.add(Path(src).name)
    for path in sorted(app.rglob("*"), key=lambda p: -len(p.parts)):
        rel = path.relative_to(app).as_posix()
        if any(rel == k or rel.startswith(k + "/") or k.startswith(rel + "/") for k in kept):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    for tool in ("migrate.py", "dlq_replay.py"):
        assert tool in kept
        shutil.copy2(DOCKER / tool, app / tool)


# Import every module, then run migrate.py as `python /app/migrate.py` would (one interpreter
# start for both: they are slow on a busy machine).
IMPORT_ALL_THEN_MIGRATE = """
import importlib, pkgutil, runpy, sys
import uvicorn
migrate, tops = sys.argv[1], sys.argv[2:]
names = []
for top in tops:
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if ".testing" in info.name or ".tests" in info.name:
            continue
        importlib.import_module(info.name)
        names.append(info.name)
print(len(names), "modules", file=sys.stderr)
sys.argv = [migrate]
runpy.run_path(migrate, run_name="__main__")
"""


@pytest.mark.parametrize("name", sorted(processes()))
def test_image_steps_produce_a_process_that_imports_and_migrates(tmp_path, name):
    app = tmp_path / "app"
    app.mkdir()
    build(name, app)
    keep_only_runtime(name, app)
    python = app / ".venv" / "bin" / "python"
    assert python.exists()
    # Nothing of the workspace: no inherited PYTHONPATH, no settings but this process's own.
    env = {"PATH": f"{app / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "PYTHONDONTWRITEBYTECODE": "1", "TECHBRIDGE_SERVICE": name}
    env[env_prefix(name) + "DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    migrated = subprocess.run(
        [str(python), "-c", IMPORT_ALL_THEN_MIGRATE, str(app / "migrate.py"), f"techbridge_{name}", "techbridge_shared"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert re.search(r"^\d+ modules$", migrated.stderr, re.M), migrated.stderr[-3000:]
    assert migrated.stdout.startswith(f"{name}: database at revision ")
    # The image holds no other process's code.
    others = {f"techbridge_{n}" for n in processes() if n != name}
    present = {p.name for p in app.rglob("techbridge_*") if p.is_dir()}
    assert not present & others, f"{name} image holds {present & others}"
