"""Render the Kustomize subset deploy/k8s uses, so tests can check what an overlay produces.

There is no kustomize binary here. This renders `kubectl kustomize` output for exactly the
features the manifests use, and refuses any other field so an unsupported feature cannot be
silently ignored:

- resources: files (one or more YAML documents) and directories holding a kustomization.yaml
- namespace: set on every resource (the Namespace object itself excepted)
- labels: [{pairs, includeSelectors: false}] -> metadata.labels only
- images: [{name, newName, newTag}] -> containers' and initContainers' image in pod templates
- patches: {path} or {patch} with an optional target {kind, name, labelSelector}; a patch that
  parses to a list is a JSON 6902 patch (add, replace, remove), a mapping is a strategic merge
  patch (lists of named objects merge by name, other lists are replaced, `null` deletes)
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Strategic merge keys of the lists the manifests patch (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class KustomizeError(Exception):
    pass


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory: Path) -> list[dict[str, Any]]:
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.exists():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")

    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            resources.extend(render(target))
        elif target.is_file():
            resources.extend(load_documents(target))
        else:
            raise KustomizeError(f"{kfile}: resource {entry} does not exist")
    _check_unique(resources, kfile)

    for patch_spec in spec.get("patches", []):
        _apply_patch(resources, patch_spec, directory)
    for label_spec in spec.get("labels", []):
        if label_spec.get("includeSelectors") or label_spec.get("includeTemplates"):
            raise KustomizeError(f"{kfile}: only labels with includeSelectors: false are supported")
        for r in resources:
            r.setdefault("metadata", {}).setdefault("labels", {}).update(label_spec["pairs"])
    for image in spec.get("images", []):
        for r in resources:
            _set_image(r, image)
    if "namespace" in spec:
        for r in resources:
            if r.get("kind") not in CLUSTER_SCOPED:
                r.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return resources


def _key(r: dict[str, Any]) -> tuple[str, str]:
    return r.get("kind", ""), r.get("metadata", {}).get("name", "")


def _check_unique(resources: list[dict[str, Any]], where: Path) -> None:
    seen = set()
    for r in resources:
        if _key(r) in seen:
            raise KustomizeError(f"{where}: {_key(r)} is defined twice")
        seen.add(_key(r))


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in _split_selector(selector):
        m = re.fullmatch(r"\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*", term)
        if m:
            values = {v.strip() for v in m.group(3).split(",")}
            present = labels.get(m.group(1)) in values
            if present != (m.group(2) == "in"):
                return False
            continue
        m = re.fullmatch(r"\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*", term)
        if not m:
            raise KustomizeError(f"unsupported label selector term {term!r}")
        equal = labels.get(m.group(1)) == m.group(3)
        if equal != (m.group(2) != "!="):
            return False
    return True


def _split_selector(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    return [t for t in [*terms, current] if t.strip()]


def _targets(resources, target: dict[str, Any] | None, patch: Any) -> list[dict[str, Any]]:
    if target is None:
        if not isinstance(patch, dict):
            raise KustomizeError("a JSON 6902 patch needs a target")
        target = {"kind": patch.get("kind"), "name": patch.get("metadata", {}).get("name")}
    unknown = set(target) - {"kind", "name", "labelSelector"}
    if unknown:
        raise KustomizeError(f"unsupported patch target fields {sorted(unknown)}")
    found = [
        r
        for r in resources
        if ("kind" not in target or r.get("kind") == target["kind"])
        and ("name" not in target or r.get("metadata", {}).get("name") == target["name"])
        and (
            "labelSelector" not in target
            or _selector_matches(target["labelSelector"], r.get("metadata", {}).get("labels", {}))
        )
    ]
    if not found:
        raise KustomizeError(f"patch target {target} matches no resource")
    return found


def _apply_patch(resources, patch_spec: dict[str, Any], directory: Path) -> None:
    unknown = set(patch_spec) - {"path", "patch", "target"}
    if unknown:
        raise KustomizeError(f"unsupported patch fields {sorted(unknown)}")
    if "path" in patch_spec:
        text = (directory / patch_spec["path"]).read_text()
    else:
        text = patch_spec["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) != 1:
        raise KustomizeError(f"a patch holds exactly one document ({patch_spec})")
    patch = docs[0]
    for r in _targets(resources, patch_spec.get("target"), patch):
        if isinstance(patch, list):
            json6902(r, patch)
        else:
            merged = strategic_merge(r, {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")})
            r.clear()
            r.update(merged)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = copy.deepcopy(base)
        for item in patch:
            match = next((i for i, b in enumerate(out) if b.get(key) == item.get(key)), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = strategic_merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"not a JSON pointer: {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if kind == "add":
                node.insert(index, copy.deepcopy(op["value"]))
            elif kind == "replace":
                node[index] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del node[index]
            else:
                raise KustomizeError(f"unsupported JSON patch op {kind}")
        else:
            if kind in ("replace", "remove") and last not in node:
                raise KustomizeError(f"{op['path']} does not exist for {kind}")
            if kind in ("add", "replace"):
                node[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del node[last]
            else:
                raise KustomizeError(f"unsupported JSON patch op {kind}")


def pod_spec(resource: dict[str, Any]) -> dict[str, Any] | None:
    kind = resource.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return resource["spec"]["template"]["spec"]
    if kind == "CronJob":
        return resource["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return resource["spec"]
    return None


def _set_image(resource: dict[str, Any], image: dict[str, Any]) -> None:
    spec = pod_spec(resource)
    if spec is None:
        return
    for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        name, sep, tag = c["image"].rpartition(":")
        if not sep or "/" in tag:
            name, tag = c["image"], ""
        if name != image["name"]:
            continue
        new_name = image.get("newName", name)
        new_tag = image.get("newTag", tag)
        c["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
