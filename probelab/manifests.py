"""Find and load a lab manifest, and point it at this run's namespace and image.

The lab's YAML files stay exactly as a student would apply them (namespace ``demo``, the
seed's placeholder image). The harness instead runs each test in its own namespace with an
image it built and pushed, so loading rewrites both and drops the ``Namespace`` object.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from probelab.errors import ProbelabError
from probelab.model.lab_app import PLACEHOLDER_REPOSITORY, is_lab_image

# Where each pod-bearing kind keeps its pod spec, as a path of mapping keys.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def image_repository(image: str) -> str:
    """Strip the digest and tag; a colon before the last slash is a registry port, not a tag."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def find_manifest(name: str, shipped: Path, student: Path | None = None) -> Path:
    """The file a lab means by `name`: the student's own copy (`--manifests DIR`) when
    there is one, else the one shipped with the lab. The one place labs look files up."""
    if student is not None and (student / name).is_file():
        return student / name
    return shipped / name


def load_manifest(path: Path, *, image: str, namespace: str) -> list[dict[str, Any]]:
    """Return the file's objects ready to create in ``namespace`` with ``image``."""
    documents = read_documents(path)
    objects: list[dict[str, Any]] = []
    pod_images: list[str] = []  # "Kind/name uses image" for every pod-bearing object
    replaced = 0
    for index, document in enumerate(documents, start=1):
        obj = checked_object(path, index, document)
        if obj["kind"] == "Namespace":
            continue
        obj["metadata"]["namespace"] = namespace
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec_of(path, label, obj)
        if spec is not None:
            for container in containers_of(path, label, spec):
                pod_images.append(f"{label} uses {container.get('image')!r}")
                if is_lab_image(str(container.get("image", ""))):
                    container["image"] = image
                    replaced += 1
        objects.append(obj)
    if pod_images and not replaced:
        raise ProbelabError(
            f"{path}: no container uses the placeholder image {PLACEHOLDER_REPOSITORY}:<tag> "
            f"({'; '.join(pod_images)})"
        )
    return objects


def read_documents(path: Path) -> list[Any]:
    """Parse every YAML document, skipping empty ones (e.g. a trailing ``---``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProbelabError(f"{path}: manifest file not found") from None
    except IsADirectoryError:
        raise ProbelabError(f"{path}: is a directory; give a YAML file") from None
    except OSError as exc:
        raise ProbelabError(f"{path}: cannot read manifest: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProbelabError(f"{path}: not a UTF-8 text file; give a YAML manifest") from None
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProbelabError(f"{where}: invalid YAML: {' '.join(str(problem).split())}") from None


def checked_object(path: Path, index: int, document: Any) -> dict[str, Any]:
    """Every object needs a kind and metadata.name to be created and reported on."""
    where = f"{path}: document {index}"
    if not isinstance(document, dict):
        raise ProbelabError(f"{where} is a {type(document).__name__}, not a mapping")
    if not isinstance(document.get("kind"), str) or not document["kind"]:
        raise ProbelabError(f"{where} has no kind")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise ProbelabError(f"{where} ({document['kind']}) has no metadata.name")
    return document


def pod_spec_of(path: Path, label: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object's pod spec, or None when its kind carries no pods."""
    keys = _POD_SPEC_PATHS.get(obj["kind"])
    if keys is None:
        return None
    node: Any = obj
    for depth, key in enumerate(keys, start=1):
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ProbelabError(f"{path}: {label} has no mapping at {'.'.join(keys[:depth])}")
    result: dict[str, Any] = node
    return result


def containers_of(path: Path, label: str, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Containers and initContainers alike: either may run the lab's image."""
    for field in ("initContainers", "containers"):
        entries = spec.get(field) or []
        if not isinstance(entries, list):
            raise ProbelabError(f"{path}: {label} {field} is not a list")
        for position, container in enumerate(entries):
            if not isinstance(container, dict):
                raise ProbelabError(f"{path}: {label} {field}[{position}] is not a mapping")
            yield container
