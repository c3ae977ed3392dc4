"""Manifests and options checked before anything is built or created.

`check_manifest` is what `lint`, `predict` and `observe` call first: the file must read as
UTF-8 YAML, each object must match the Kubernetes JSON schema of the target release
(`kubernetes-validate`, which bundles the schemas; strict, so misspelt fields count), and
each pod spec must pass the checks the API server applies beyond the schema (port ranges,
one handler per probe, probe numbers in range, names that are DNS labels). Every problem
is one `ProbelabError` line: where, what, and the fix; the CLI exits 2 with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate

from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.manifests import checked_object, containers_of, pod_spec_of, read_documents

DEFAULT_VERSION = "1.35"
INT32_MAX = 2**31 - 1
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
MAX_PREFIX = 40  # leaves room in a 63-character namespace for the scenario and a suffix
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_manifest(path: Path, *, version: str = DEFAULT_VERSION) -> list[dict[str, Any]]:
    """The manifest's objects, or a ProbelabError for the first thing the API would refuse."""
    objects = [
        checked_object(path, index, document)
        for index, document in enumerate(read_documents(path), start=1)
    ]
    if not objects:
        raise ProbelabError(
            _("{path}: no objects in the manifest; give a file with a Pod or a workload").format(
                path=path
            )
        )
    for obj in objects:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        check_schema(path, label, obj, version=version)
        spec = pod_spec_of(path, label, obj)
        if spec is not None:
            check_pod_spec(path, label, spec)
    return objects


def check_schema(path: Path, label: str, obj: Mapping[str, Any], *, version: str) -> None:
    """The object against the release's JSON schema; kinds it has no schema for pass."""
    if not isinstance(obj.get("apiVersion"), str):
        raise ProbelabError(
            _("{path}: {label} has no apiVersion; add one, e.g. apiVersion: v1").format(
                path=path, label=label
            )
        )
    if kubernetes_validate.utils.major_minor(version) > kubernetes_validate.latest_version():
        version = kubernetes_validate.latest_version()  # newer than the bundled schemas
    try:
        kubernetes_validate.validate(dict(obj), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return  # a custom resource: only its own CRD knows its schema
    except kubernetes_validate.ValidationError as error:
        where = _field_path(error.absolute_path)
        raise ProbelabError(
            _("{path}: {label} {field}: {problem}; {fix}").format(
                path=path,
                label=label,
                field=where or "(object)",
                problem=_short(error.message),
                fix=_schema_fix(error.validator),
            )
        ) from None


def _field_path(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(message: str, limit: int = 120) -> str:
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _schema_fix(validator: object) -> str:
    fixes = {
        "type": _("write it in the type the API expects"),
        "additionalProperties": _("remove the field or correct its spelling"),
        "required": _("add the missing field"),
        "enum": _("use one of the listed values"),
        "format": _("give a value of that format"),
    }
    return fixes.get(str(validator), _("see `kubectl explain` for the field"))


def check_pod_spec(path: Path, label: str, spec: Mapping[str, Any]) -> None:
    """What the API server refuses in a pod spec that the schema lets through."""
    where = f"{path}: {label}"
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        _refuse(
            where,
            "spec.restartPolicy",
            _("{value!r} is not a restart policy").format(value=policy),
            _("use one of {choices}").format(choices=", ".join(RESTART_POLICIES)),
        )
    seen: set[str] = set()
    for container in containers_of(path, label, dict(spec)):
        name = str(container.get("name", ""))
        here = f"{where} container {name or '?'}"
        if not _DNS_LABEL.match(name) or len(name) > 63:
            _refuse(
                here,
                "name",
                _("{value!r} is not a DNS label").format(value=name),
                _("use lower-case letters, digits and '-', at most 63 characters"),
            )
        if name in seen:
            _refuse(
                here,
                "name",
                _("two containers are named {name}").format(name=name),
                _("give each container its own name"),
            )
        seen.add(name)
        ports = container.get("ports") or []
        for index, port in enumerate(ports):
            _port_number(here, f"ports[{index}].containerPort", port.get("containerPort"))
            if "name" in port:
                _port_name(here, f"ports[{index}].name", port["name"])
        for probe_name, probe in _probes(container):
            _check_probe(here, probe_name, probe)


def _probes(container: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name in PROBES:
        probe = container.get(name)
        if isinstance(probe, Mapping):
            yield name, probe


def _check_probe(where: str, name: str, probe: Mapping[str, Any]) -> None:
    handlers = [h for h in HANDLERS if probe.get(h) is not None]
    if len(handlers) != 1:
        problem = (
            _("no handler")
            if not handlers
            else _("{count} handlers ({names})").format(
                count=len(handlers), names=", ".join(handlers)
            )
        )
        _refuse(where, name, problem, _("give exactly one of httpGet, tcpSocket, exec, grpc"))
    handler = probe[handlers[0]]
    if handlers[0] in ("httpGet", "tcpSocket") and isinstance(handler, Mapping):
        port = handler.get("port")
        field = f"{name}.{handlers[0]}.port"
        if isinstance(port, str) and not port.isdigit():
            _port_name(where, field, port)
        else:
            _port_number(where, field, int(port) if isinstance(port, str) else port)
    if handlers[0] == "grpc" and isinstance(handler, Mapping):
        _port_number(where, f"{name}.grpc.port", handler.get("port"))
    for field, least in (
        ("initialDelaySeconds", 0),
        ("timeoutSeconds", 0),
        ("periodSeconds", 0),
        ("successThreshold", 0),
        ("failureThreshold", 0),
        ("terminationGracePeriodSeconds", 1),
    ):
        value = probe.get(field)
        if value is not None and not (
            isinstance(value, int) and not isinstance(value, bool) and least <= value <= INT32_MAX
        ):
            _refuse(
                where,
                f"{name}.{field}",
                _("{value!r} is not a whole number from {least} to {most}").format(
                    value=value, least=least, most=INT32_MAX
                ),
                _("give a whole number of seconds (or times) in that range"),
            )
    if name != "readinessProbe" and probe.get("successThreshold") not in (None, 0, 1):
        _refuse(
            where,
            f"{name}.successThreshold",
            _("must be 1 for a {probe}").format(probe=name),
            _("set it to 1 or leave it out"),
        )


def _port_number(where: str, field: str, value: object) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535):
        _refuse(
            where,
            field,
            _("{value!r} is not a port number").format(value=value),
            _("use a port from 1 to 65535"),
        )


def _port_name(where: str, field: str, value: object) -> None:
    if not (isinstance(value, str) and len(value) <= 15 and _PORT_NAME.match(value)):
        _refuse(
            where,
            field,
            _("{value!r} is not a port name").format(value=value),
            _("use at most 15 lower-case letters, digits and '-', with a letter"),
        )


def _refuse(where: str, field: str, problem: str, fix: str) -> None:
    raise ProbelabError(
        _("{where} {field}: {problem}; {fix}").format(
            where=where, field=field, problem=problem, fix=fix
        )
    )


def check_seconds(
    option: str,
    value: float,
    *,
    least: float = 0.0,
    most: float = 86_400.0,
    allow_least: bool = True,
) -> float:
    """A duration option: finite and within [least, most] (or (least, most])."""
    ok = (
        math.isfinite(value)
        and value <= most
        and (value >= least if allow_least else value > least)
    )
    if not ok:
        low = "[" if allow_least else "("
        raise ProbelabError(
            _(
                "{option} must be a number of seconds in {low}{least:g}, {most:g}], got {value}; "
                "give one in that range"
            ).format(option=option, low=low, least=least, most=most, value=value)
        )
    return value


def check_namespace_prefix(prefix: str) -> str:
    """Namespaces are DNS labels: `<prefix>-<scenario>-<suffix>` must stay one."""
    if not (_DNS_LABEL.match(prefix) and len(prefix) <= MAX_PREFIX):
        raise ProbelabError(
            _(
                "--namespace-prefix {prefix!r} cannot start a namespace name; use at most "
                "{most} lower-case letters, digits and '-', starting and ending with a "
                "letter or digit"
            ).format(prefix=prefix, most=MAX_PREFIX)
        )
    return prefix


def check_output_dir(option: str, path: Path) -> Path:
    """A directory to write into: refused now, not after all the work is done."""
    if path.exists() and not path.is_dir():
        raise ProbelabError(
            _("{option} {path} is a file; give a directory (it is created if missing)").format(
                option=option, path=path
            )
        )
    return path
