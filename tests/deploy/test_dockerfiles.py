"""deploy/docker/<process>.Dockerfile: pinned, non-root, health-checked, and only its own code.

No image is built here (no container engine); these read each Dockerfile the way a reviewer
would and check what a build would otherwise reveal in production: an unpinned base, a root
process, a missing migrations directory, another service's code or dependencies in the image.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy_support import DEPLOY, ROOT, processes, settings_class

DOCKER = DEPLOY / "docker"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def stages(instrs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def resolve_args(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def copy_sources(arguments: str) -> list[str]:
    """The source paths of a COPY instruction (flags and the destination dropped)."""
    return [a for a in shlex.split(arguments)[:-1] if not a.startswith("--")]


def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False  # no tag at all: latest
    return tag != "latest" and bool(re.match(r"^v?\d+(\.\d+)+", tag))


def test_pin_check_refuses_floating_tags():
    assert pinned("python:3.11.14-slim-bookworm")
    assert pinned("apache/kafka:4.1.1")
    assert pinned("python@sha256:" + "0" * 64)
    for floating in ("python", "python:latest", "python:slim", "python:3-slim", "registry:5000/python"):
        assert not pinned(floating), floating


def test_every_process_has_a_dockerfile():
    for name in processes():
        assert (DOCKER / f"{name}.Dockerfile").exists(), f"deploy/docker/{name}.Dockerfile is missing"
        assert (DOCKER / f"{name}.Dockerfile.dockerignore").exists()


@pytest.fixture(params=sorted(processes()))
def process(request) -> tuple[str, Path, list[tuple[str, str]]]:
    name = request.param
    return name, processes()[name], instructions(DOCKER / f"{name}.Dockerfile")


def test_base_images_are_pinned(process):
    name, _, instrs = process
    args = {}
    for keyword, rest in instrs:
        if keyword == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k.strip()] = v.strip()
    stage_names = set()
    for keyword, rest in instrs:
        if keyword != "FROM":
            continue
        parts = resolve_args(rest, args).split()
        image = next(p for p in parts if not p.startswith("--"))
        if image not in stage_names:
            assert pinned(image), f"{name}: FROM {image} is not pinned to a version"
        if len(parts) >= 3 and parts[-2].upper() == "AS":
            stage_names.add(parts[-1])


def test_final_stage_runs_as_a_non_root_user_with_a_health_check(process):
    name, _, instrs = process
    final = stages(instrs)[-1]
    users = [rest for k, rest in final if k == "USER"]
    assert users, f"{name}: the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{name}: runs as root"
    health = [rest for k, rest in final if k == "HEALTHCHECK"]
    assert health and "/health/" in health[-1], f"{name}: no HEALTHCHECK on a health endpoint"
    port = settings_class(name).model_fields["port"].default
    assert f":{port}/health/" in health[-1]
    assert any(k == "EXPOSE" and rest.split()[0] == str(port) for k, rest in final)
    cmd = [rest for k, rest in final if k == "CMD"][-1]
    assert cmd.startswith("[") and f'"techbridge_{name}"' in cmd, f"{name}: CMD must exec the service (JSON form)"
    env = " ".join(rest for k, rest in final if k == "ENV")
    assert f"{name.upper()}_HOST=0.0.0.0" in env, f"{name}: must listen beyond the container's loopback"
    assert f"TECHBRIDGE_SERVICE={name}" in env


def test_image_holds_only_its_own_code_and_its_migrations(process):
    name, directory, instrs = process
    own = directory.relative_to(ROOT).as_posix()
    syncs = [rest for k, rest in instrs if k == "RUN" and "uv sync" in rest]
    assert syncs and all(f"--package techbridge-{name}" in s and "--frozen" in s and "--no-dev" in s for s in syncs)
    final = stages(instrs)[-1]
    copied = [rest for k, rest in final if k == "COPY"]
    sources = {src for c in copied for src in copy_sources(c)}
    assert f"/app/{own}" in sources, f"{name}: the final image does not copy {own}"
    others = {p.relative_to(ROOT).as_posix() for n, p in processes().items() if n != name}
    for c in [rest for k, rest in instrs if k == "COPY"]:
        for other in others:
            for src in copy_sources(c):
                assert not src.startswith(other + "/") or src == f"{other}/pyproject.toml", f"{name} copies {src}"
    assert (directory / "migrations" / "env.py").exists()
    assert list((directory / "migrations" / "versions").glob("*.py")), f"{name}: no migrations"
    # The service looks for migrations/ beside its package: copying the whole directory keeps it.
    main = (directory / f"techbridge_{name}" / "main.py").read_text()
    assert 'parent.parent / "migrations"' in main
    tools = {"deploy/docker/migrate.py", "deploy/docker/dlq_replay.py"}
    assert tools <= sources, f"{name}: the image lacks {tools - sources}"
    assert any(c.split()[-1] == "/app/" and tools <= set(copy_sources(c)) for c in copied)


def test_dockerignore_keeps_tests_and_local_state_out(process):
    name, *_ = process
    ignore = (DOCKER / f"{name}.Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**")] == "**", "deny by default"
    assert "**/tests" in ignore and "**/__pycache__" in ignore
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for keyword, rest in instructions(DOCKER / f"{name}.Dockerfile"):
        if keyword == "COPY" and "--from=" not in rest:
            for src in copy_sources(rest):
                src = src.rstrip("/")
                assert any(src == a or src.startswith(a + "/") for a in allowed), f"{src} is ignored by the build"


def uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = shutil.which("uv") or (str(local) if local.exists() else None)
    if not found:
        pytest.skip("uv is not installed")
    return found


@functools.lru_cache(maxsize=None)
def exported(name: str) -> frozenset[str]:
    out = subprocess.run(
        [uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-header", "--no-annotate",
         "--package", f"techbridge-{name}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    names = set()
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-e "):
            names.add(Path(line[3:]).name)
            continue
        names.add(re.split(r"[=<>;\s\[]", line, maxsplit=1)[0].lower())
    return frozenset(names)


def test_each_image_installs_only_its_own_dependencies():
    """What `uv sync --package techbridge-<name>` installs, read from uv.lock (offline)."""
    everything = {n: exported(n) for n in processes()}
    for name, deps in everything.items():
        own_dir = processes()[name].name
        for other, directory in processes().items():
            if other != name:
                assert directory.name not in deps or directory.name == own_dir, f"{name} image would hold {other}"
        assert "shared" in deps or "techbridge-shared" in deps
        for heavy in ("torch", "tensorflow", "sentence-transformers"):
            assert heavy not in deps, f"{name} would install {heavy}"
        for dev_only in ("pytest", "hypothesis"):
            assert dev_only not in deps, f"{name} would install the dev tool {dev_only}"


def imported_modules(package_dir: Path) -> set[str]:
    """Top-level modules a package imports at run time (its tests and test helpers excluded)."""
    import ast

    found = set()
    for path in package_dir.rglob("*.py"):
        if {"tests", "testing"} & set(path.relative_to(package_dir).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


@pytest.mark.parametrize("name", sorted(processes()))
def test_everything_the_code_imports_is_in_its_image(name):
    """A module that is importable in the workspace but missing from the image crashes there."""
    import sys
    from importlib.metadata import packages_distributions

    deps = {normalise(d) for d in exported(name)}
    dists = packages_distributions()
    assert "aiokafka" in imported_modules(ROOT / "shared" / "techbridge_shared")  # the scan sees imports
    modules = imported_modules(processes()[name] / f"techbridge_{name}") | imported_modules(
        ROOT / "shared" / "techbridge_shared"
    )
    missing = []
    for module in sorted(modules):
        if module in sys.stdlib_module_names or module.startswith("techbridge_") or module == "__future__":
            continue
        providers = {normalise(d) for d in dists.get(module, [])}
        if not providers & deps:
            missing.append(f"{module} (from {sorted(providers) or 'nothing installed'})")
    assert not missing, f"{name} imports what its image would not install: {missing}"
