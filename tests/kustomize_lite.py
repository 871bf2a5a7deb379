"""A small kustomize renderer for the tests, used where no `kustomize` or `kubectl` binary is installed.

It implements exactly the subset that k8s/ uses, and refuses anything else rather than guess:
`resources` (files, and directories holding a kustomization), `namespace`, `images`, `replicas` and
`patches` given as strategic-merge patch files (matched by kind and name; `$patch: delete` of a whole
object; lists of containers, env, volumes, volumeMounts and ports merged by their Kubernetes merge keys,
other lists replaced; null deletes a key). When a real kustomize is present, tests/test_deploy.py checks
that this renderer gives the same objects for every overlay, so the fallback stays honest.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}

# Kinds without a namespace (the ones a kustomization here could plausibly contain).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
}

# patchMergeKey of the list fields that the Kubernetes API merges by key (others are replaced).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}

REPLICATED = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


class Unsupported(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build DIRECTORY` would print (in no particular order)."""
    directory = Path(directory)
    (kustomization,) = load_all(directory / "kustomization.yaml")
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {sorted(unknown)} are not supported")

    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects += build(path) if path.is_dir() else load_all(path)

    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"{directory}: only `patches: - path: FILE` (strategic merge) is supported")
        for doc in load_all(directory / patch["path"]):
            objects = _apply_patch(objects, doc)

    if "namespace" in kustomization:
        _set_namespace(objects, kustomization["namespace"])
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    for replicas in kustomization.get("replicas", []):
        _set_replicas(objects, replicas["name"], replicas["count"])
    return objects


def _matches(obj: dict[str, Any], patch: dict[str, Any]) -> bool:
    group = lambda d: d.get("apiVersion", "").rpartition("/")[0]  # noqa: E731
    return (
        obj.get("kind") == patch.get("kind")
        and obj["metadata"]["name"] == patch["metadata"]["name"]
        and group(obj) == group(patch)
    )


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    targets = [obj for obj in objects if _matches(obj, patch)]
    if len(targets) != 1:
        raise ValueError(f"patch for {patch.get('kind')}/{patch['metadata']['name']} matches {len(targets)}")
    target = targets[0]
    if patch.get("$patch") == "delete":
        return [obj for obj in objects if obj is not target]
    merged = merge(target, patch)
    return [merged if obj is target else obj for obj in objects]


def merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """Strategic merge of PATCH into BASE (both left unchanged)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if key == "$patch":
                continue
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, key)
            else:
                out[key] = _strip_directives(copy.deepcopy(value))
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = copy.deepcopy(base)
        for item in patch:
            index = next((i for i, b in enumerate(out) if b.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    del out[index]
            elif index is None:
                out.append(_strip_directives(copy.deepcopy(item)))
            else:
                out[index] = merge(out[index], item, None)
        return out
    return _strip_directives(copy.deepcopy(patch))


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _set_namespace(objects: list[dict[str, Any]], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        elif obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload object, or None."""
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return spec.get("template", {}).get("spec") if isinstance(spec.get("template"), dict) else None


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest]` -> (name, tag, digest); a registry port is not a tag."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def _set_image(objects: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    unknown = set(entry) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise Unsupported(f"images: fields {sorted(unknown)} are not supported")
    for obj in objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name, tag, digest = split_image(container["image"])
            if name != entry["name"]:
                continue
            name = entry.get("newName", name)
            if "digest" in entry:
                tag, digest = None, entry["digest"]
            elif "newTag" in entry:
                tag, digest = str(entry["newTag"]), None
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _set_replicas(objects: list[dict[str, Any]], name: str, count: int) -> None:
    found = False
    for obj in objects:
        if obj["kind"] in REPLICATED and obj["metadata"]["name"] == name:
            obj.setdefault("spec", {})["replicas"] = count
            found = True
    if not found:
        raise ValueError(f"replicas: no workload named {name}")
