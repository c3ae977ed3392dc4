"""Probe settings with the API's defaults, and how a probe's handler and port resolve.

Facts from the Pod API (core/v1 types.go, defaults.go) and kubelet's prober (prober.go):
a probe has exactly one handler; omitted timing fields take the API defaults below; a
named port is looked up among the container's declared ports, and a name no port
carries makes the probe *error* (kubelet logs it and throws the result away, so such a
probe never counts towards a threshold, never restarts and never readies anything).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probelab.model.errors import ModelError

PROBE_KINDS = ("startup", "liveness", "readiness")
HANDLERS = ("httpGet", "tcpSocket", "grpc", "exec")


@dataclass(frozen=True)
class ProbeSettings:
    """A probe's timing fields, with the API's defaults for any left out."""

    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeSettings:
        """Read a manifest's probe mapping, refusing values the API server rejects."""
        values: dict[str, int] = {}
        for key, (attribute, minimum) in _FIELDS.items():
            if key not in probe:
                continue
            value = probe[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ModelError(f"probe {key} must be an integer >= {minimum}, got {value!r}")
            if value > MAX_PROBE_SECONDS:
                raise ModelError(f"probe {key} {value} is beyond what can be modelled")
            values[attribute] = value
        return cls(**values)

    def earliest_failure_verdict(self) -> float:
        """The soonest, after the container starts, that failureThreshold failures a
        period apart can exist: no probe runs before initialDelaySeconds."""
        return float(self.initial_delay + (self.failure_threshold - 1) * self.period)


MAX_PROBE_SECONDS = 86_400
"""Longest probe setting the model plays forward (a day); larger ones are refused."""

# Manifest field -> (ProbeSettings field, smallest value the API accepts).
_FIELDS: dict[str, tuple[str, int]] = {
    "initialDelaySeconds": ("initial_delay", 0),
    "periodSeconds": ("period", 1),
    "timeoutSeconds": ("timeout", 1),
    "successThreshold": ("success_threshold", 1),
    "failureThreshold": ("failure_threshold", 1),
}


def container_probes(container: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The container's probes by kind (startup, liveness, readiness)."""
    found = {kind: container.get(f"{kind}Probe") for kind in PROBE_KINDS}
    return {kind: probe for kind, probe in found.items() if isinstance(probe, Mapping)}


def handler_of(probe: Mapping[str, Any]) -> str:
    """The probe's one handler; none or several is what the API server rejects."""
    present = [name for name in HANDLERS if isinstance(probe.get(name), Mapping)]
    if len(present) != 1:
        found = " and ".join(present) or "none"
        raise ModelError(f"a probe needs exactly one of {', '.join(HANDLERS)}; found {found}")
    return present[0]


def declared_ports(container: Mapping[str, Any]) -> frozenset[int]:
    """The container's declared port numbers."""
    return frozenset(
        p["containerPort"]
        for p in container.get("ports") or []
        if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int)
    )


def resolve_port(container: Mapping[str, Any], port: object) -> int | None:
    """A probe's port as a number; a name is looked up in the container's ports; None
    when the name is declared nowhere (kubelet: the probe errors)."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if isinstance(declared, Mapping) and declared.get("name") == port:
            number = declared.get("containerPort")
            return number if isinstance(number, int) else None
    return None


def pulls_every_start(container: Mapping[str, Any]) -> bool:
    """imagePullPolicy Always: set so, or left out with a ``:latest`` or missing tag (the
    API's default). kubelet then asks the registry again before every container start."""
    policy = container.get("imagePullPolicy")
    if policy is not None:
        return bool(policy == "Always")
    image = str(container.get("image", "")).split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return "@" not in str(container.get("image", "")) and (
        ":" not in last or last.endswith(":latest")
    )


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    """A container's literal env values (``valueFrom`` entries cannot be known here)."""
    return {
        str(e.get("name")): str(e.get("value", ""))
        for e in container.get("env") or []
        if isinstance(e, Mapping) and "value" in e
    }
