"""An instructor's read-only rubric for one student's run of the seed's lab.

`read_namespace` takes a snapshot of the student's namespace with GET requests only: pods,
events, the default ServiceAccount, the pull secrets it names (their type and key names;
the values are dropped as soon as they arrive), the Service and its EndpointSlices. `grade`
turns the snapshot into checks, each with points, the evidence it saw and, when it fails,
a hint at the step of the seed that fixes it. Grading is a pure function of the snapshot,
so the rubric is tested without a cluster and a snapshot can be graded again later.

The rubric expects the seed's names (`fastapi-bad`, `fastapi-good`, `fastapi-slow`,
`fastapi-svc`, the `ecr-regcred` secret on the `default` ServiceAccount). What a check
cannot read (e.g. secrets, which the built-in `view` role does not grant) fails that check
with the reason, instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from string import Template
from typing import Any

import urllib3.exceptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.errors import ProbelabError
from probelab.i18n import N_, _
from probelab.registries.base import PULL_SECRET

SEED_NAMESPACE = "demo"
BAD, GOOD, SLOW = "fastapi-bad", "fastapi-good", "fastapi-slow"
SERVICE = "fastapi-svc"
SERVICE_ACCOUNT = "default"
PULL_SECRET_TYPE = "kubernetes.io/dockerconfigjson"
PULL_SECRET_KEY = ".dockerconfigjson"
DEFAULT_PASS_MARK = 70

Obj = Mapping[str, Any]
"""An API object as JSON (camelCase keys), as `kubectl get -o json` shows it."""

# What a check reads; a kind that could not be read fails every check that needs it.
PODS, EVENTS, ACCOUNTS, SECRETS, SERVICES, SLICES = (
    "pods",
    "events",
    "serviceaccounts",
    "secrets",
    "services",
    "endpointslices",
)


@dataclass(frozen=True)
class Snapshot:
    """What the rubric read from one namespace."""

    namespace: str
    pods: Mapping[str, Obj] = field(default_factory=dict)
    events: Sequence[Obj] = ()
    service_account: Obj | None = None
    pull_secret: Obj | None = None  # its name, type and key names: never the values
    service: Obj | None = None
    endpoint_slices: Sequence[Obj] = ()
    unreadable: Mapping[str, str] = field(default_factory=dict)  # kind -> why not


@dataclass(frozen=True)
class Result:
    """One check's outcome."""

    id: str
    title: str
    passed: bool
    points: int  # earned
    max_points: int
    evidence: str
    hint: str | None  # only when failed


@dataclass(frozen=True)
class Check:
    """A rubric item: `judge` says whether the snapshot passes and what showed it."""

    id: str
    title: str
    points: int
    hint: str  # may name $namespace
    needs: tuple[str, ...]
    judge: Callable[[Snapshot], tuple[bool, str]]

    def run(self, snapshot: Snapshot) -> Result:
        unread = snapshot.unreadable
        missing = [f"{kind} ({unread[kind]})" for kind in self.needs if kind in unread]
        if missing:
            passed = False
            evidence = _("could not read {what}").format(what="; ".join(missing))
            hint = UNREADABLE_HINT
        else:
            passed, evidence = self.judge(snapshot)
            hint = self.hint
        return Result(
            id=self.id,
            title=shown(self.title, snapshot.namespace),
            passed=passed,
            points=self.points if passed else 0,
            max_points=self.points,
            evidence=evidence,
            hint=None if passed else shown(hint, snapshot.namespace),
        )


def shown(text: str, namespace: str) -> str:
    """A title or hint as a reader sees it: translated, names and namespace filled in."""
    return Template(_(text).format(**NAMES)).safe_substitute(namespace=namespace)


UNREADABLE_HINT = N_(
    "give the instructor's credentials read access in $namespace: the `view` ClusterRole "
    "(RoleBinding) plus a Role with get on secret {secret} (view excludes secrets); "
    "see docs/instructors.md"
)


# --- reading -----------------------------------------------------------------------------


def read_namespace(api: client.ApiClient, namespace: str) -> Snapshot:
    """Everything the rubric needs, by GET and LIST only.

    A 404 means "not there" (the check says so); a 403 or other API error marks that kind
    unreadable. A cluster that does not answer at all is a ProbelabError.
    """
    core = client.CoreV1Api(api)
    unreadable: dict[str, str] = {}

    def read(kind: str, call: Callable[[], Any]) -> Any:
        try:
            return api.sanitize_for_serialization(kube.retry_transient(call)())
        except ApiException as error:
            if error.status != 404:
                unreadable[kind] = f"{error.status} {error.reason}".strip()
            return None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            host = api.configuration.host
            raise ProbelabError(f"the cluster at {host} stopped answering: {error}") from error

    pods = read(PODS, lambda: core.list_namespaced_pod(namespace)) or {}
    events = read(EVENTS, lambda: core.list_namespaced_event(namespace)) or {}
    account = read(
        ACCOUNTS, lambda: core.read_namespaced_service_account(SERVICE_ACCOUNT, namespace)
    )
    secret = read(SECRETS, lambda: core.read_namespaced_secret(PULL_SECRET, namespace))
    service = read(SERVICES, lambda: core.read_namespaced_service(SERVICE, namespace))
    discovery = client.DiscoveryV1Api(api)
    selector = f"kubernetes.io/service-name={SERVICE}"
    slices = read(
        SLICES, lambda: discovery.list_namespaced_endpoint_slice(namespace, label_selector=selector)
    )
    return Snapshot(
        namespace=namespace,
        pods={p["metadata"]["name"]: p for p in pods.get("items") or []},
        events=tuple(events.get("items") or []),
        service_account=account,
        pull_secret=_without_values(secret) if secret is not None else None,
        service=service,
        endpoint_slices=tuple((slices or {}).get("items") or []),
        unreadable=unreadable,
    )


def _without_values(secret: Obj) -> Obj:
    """Keep what the rubric judges (name, type, key names); never the credentials."""
    return {
        "metadata": {"name": secret["metadata"]["name"]},
        "type": secret.get("type"),
        "dataKeys": sorted(secret.get("data") or {}),
    }


def _pull_secret_names(account: Obj | None) -> list[str]:
    return [ref.get("name", "") for ref in (account or {}).get("imagePullSecrets") or []]


# --- judging -----------------------------------------------------------------------------


def _containers(pod: Obj) -> list[Obj]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _restarts(pod: Obj) -> int:
    return sum(int(c.get("restartCount") or 0) for c in _containers(pod))


def _is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _pod_events(snapshot: Snapshot, pod: Obj) -> list[Obj]:
    """Events about this very pod: a deleted and re-created pod's old events do not count."""
    name, uid = pod["metadata"]["name"], pod["metadata"].get("uid")
    return [
        e
        for e in snapshot.events
        if (e.get("involvedObject") or {}).get("kind") == "Pod"
        and e["involvedObject"].get("name") == name
        and e["involvedObject"].get("uid") in (None, uid)
    ]


def _occurrences(event: Obj) -> int:
    return int(event.get("count") or (event.get("series") or {}).get("count") or 1)


def _matching(events: Iterable[Obj], reason: str, contains: str) -> tuple[int, str | None]:
    """How often events of `reason` whose message holds `contains` happened, and the
    newest such message."""
    found = [
        e for e in events if e.get("reason") == reason and contains in str(e.get("message", ""))
    ]
    return sum(_occurrences(e) for e in found), (str(found[-1]["message"]) if found else None)


def _seen(count: int, reason: str, message: str | None) -> str:
    return f"{count}x {reason}: {' '.join((message or '').split())}" if count else ""


def _missing_pod(snapshot: Snapshot, name: str) -> tuple[bool, str]:
    return False, _("no pod {name} in namespace {namespace}").format(
        name=name, namespace=snapshot.namespace
    )


def _bad_restarted_by_liveness(snapshot: Snapshot) -> tuple[bool, str]:
    pod = snapshot.pods.get(BAD)
    if pod is None:
        return _missing_pod(snapshot, BAD)
    events = _pod_events(snapshot, pod)
    kills, kill_message = _matching(events, "Killing", "failed liveness probe")
    failures, failure_message = _matching(events, "Unhealthy", "Liveness probe failed")
    restarts = _restarts(pod)
    evidence = [
        f"restartCount {restarts}",
        _seen(kills, "Killing", kill_message) or _("no Killing event for a failed liveness probe"),
        _seen(failures, "Unhealthy", failure_message) or _("no failed liveness probe event"),
    ]
    return restarts > 0 and kills > 0, "; ".join(evidence)


def _bad_reached_crash_loop(snapshot: Snapshot) -> tuple[bool, str]:
    pod = snapshot.pods.get(BAD)
    if pod is None:
        return _missing_pod(snapshot, BAD)
    waiting = [
        (c.get("state") or {}).get("waiting") or {}
        for c in _containers(pod)
        if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    ]
    back_offs, message = _matching(
        _pod_events(snapshot, pod), "BackOff", "Back-off restarting failed container"
    )
    evidence = [
        _("now waiting: CrashLoopBackOff ({message})").format(
            message=" ".join(str(waiting[0].get("message", "")).split())
        )
        if waiting
        else _("not in CrashLoopBackOff right now"),
        _seen(back_offs, "BackOff", message) or _("no BackOff event"),
    ]
    return bool(waiting) or back_offs > 0, "; ".join(evidence)


def _ready_without_restarts(name: str) -> Callable[[Snapshot], tuple[bool, str]]:
    def judge(snapshot: Snapshot) -> tuple[bool, str]:
        pod = snapshot.pods.get(name)
        if pod is None:
            return _missing_pod(snapshot, name)
        ready, restarts = _is_ready(pod), _restarts(pod)
        phase = (pod.get("status") or {}).get("phase")
        evidence = [f"phase {phase}", f"Ready={ready}", f"restartCount {restarts}"]
        for container in _containers(pod):
            last = (container.get("lastState") or {}).get("terminated")
            if last:
                evidence.append(
                    _("{name} last ended: {reason} (exit {code})").format(
                        name=container.get("name"),
                        reason=last.get("reason"),
                        code=last.get("exitCode"),
                    )
                )
        return ready and restarts == 0, "; ".join(evidence)

    return judge


def _slow_has_startup_probe(snapshot: Snapshot) -> tuple[bool, str]:
    pod = snapshot.pods.get(SLOW)
    if pod is None:
        return _missing_pod(snapshot, SLOW)
    described = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        probe = container.get("startupProbe")
        if probe is None:
            return False, _("container {name} has no startupProbe").format(
                name=container.get("name")
            )
        described.append(f"{container.get('name')}: startupProbe {_describe_probe(probe)}")
    return bool(described), "; ".join(described) or _("no containers")


def _describe_probe(probe: Obj) -> str:
    """Like `kubectl describe`: handler, then the timing fields (API defaults applied)."""
    if "httpGet" in probe:
        http = probe["httpGet"]
        handler = f"http-get :{http.get('port')}{http.get('path', '/')}"
    else:
        handler = next((key for key in ("tcpSocket", "exec", "grpc") if key in probe), "?")
    period, failures = probe.get("periodSeconds", 10), probe.get("failureThreshold", 3)
    return (
        f"{handler} delay={probe.get('initialDelaySeconds', 0)}s "
        f"timeout={probe.get('timeoutSeconds', 1)}s period={period}s #failure={failures} "
        + _("(allows about {seconds}s to start)").format(seconds=period * failures)
    )


def _account_carries_secret(snapshot: Snapshot) -> tuple[bool, str]:
    if snapshot.service_account is None:
        return False, _("no ServiceAccount {account} in {namespace}").format(
            account=SERVICE_ACCOUNT, namespace=snapshot.namespace
        )
    names = _pull_secret_names(snapshot.service_account)
    listed = ", ".join(names) if names else _("none")
    return PULL_SECRET in names, f"ServiceAccount {SERVICE_ACCOUNT} imagePullSecrets: {listed}"


def _secret_has_pull_type(snapshot: Snapshot) -> tuple[bool, str]:
    secret = snapshot.pull_secret
    if secret is None:
        return False, _("no secret {secret} in {namespace}").format(
            secret=PULL_SECRET, namespace=snapshot.namespace
        )
    kind, keys = secret.get("type"), list(secret.get("dataKeys") or [])
    evidence = f"secret {PULL_SECRET}: type {kind}, keys {', '.join(keys) or 'none'}"
    return kind == PULL_SECRET_TYPE and PULL_SECRET_KEY in keys, evidence


def _service_has_good_endpoint(snapshot: Snapshot) -> tuple[bool, str]:
    if snapshot.service is None:
        return False, _("no Service {service} in {namespace}").format(
            service=SERVICE, namespace=snapshot.namespace
        )
    selector = (snapshot.service.get("spec") or {}).get("selector") or {}
    shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "none"
    endpoints = []
    passed = False
    for slice_ in snapshot.endpoint_slices:
        for endpoint in slice_.get("endpoints") or []:
            target = (endpoint.get("targetRef") or {}).get("name", "?")
            ready = bool((endpoint.get("conditions") or {}).get("ready"))
            addresses = ",".join(endpoint.get("addresses") or [])
            endpoints.append(f"{addresses} ({target}, {'ready' if ready else 'not ready'})")
            passed = passed or (target == GOOD and ready)
    listed = "; ".join(endpoints) if endpoints else _("none")
    return passed, f"Service {SERVICE} selector {shown}; endpoints: {listed}"


# Titles and hints are translated when a check runs; {bad}, {good}... are NAMES below and
# $namespace the student's namespace.
NAMES = {
    "bad": BAD,
    "good": GOOD,
    "slow": SLOW,
    "service": SERVICE,
    "account": SERVICE_ACCOUNT,
    "secret": PULL_SECRET,
    "secret_type": PULL_SECRET_TYPE,
}

RUBRIC: tuple[Check, ...] = (
    Check(
        "bad-restarted-by-liveness",
        N_("{bad} was restarted by its liveness probe"),
        15,
        N_(
            "apply the seed's fastapi-liveness-bad.yaml (liveness on port 8000, the app serves "
            "8080) and leave the pod running so kubelet kills it for failed liveness probes; "
            "events expire after an hour (kube-apiserver --event-ttl), so if they are gone "
            "delete and re-apply the pod"
        ),
        (PODS, EVENTS),
        _bad_restarted_by_liveness,
    ),
    Check(
        "bad-crash-loop-back-off",
        N_("{bad} reached CrashLoopBackOff"),
        10,
        N_(
            "leave {bad} running until `kubectl -n $namespace get pod {bad} -w` shows "
            "CrashLoopBackOff (three or four restarts, about a minute)"
        ),
        (PODS, EVENTS),
        _bad_reached_crash_loop,
    ),
    Check(
        "good-ready",
        N_("{good} is Ready with 0 restarts"),
        15,
        N_(
            "apply fastapi-liveness-good.yaml: liveness on /healthz and readiness on /ready, "
            "both on port 8080 where the app listens; a restart means a probe aims at the "
            "wrong port or path"
        ),
        (PODS,),
        _ready_without_restarts(GOOD),
    ),
    Check(
        "slow-has-startup-probe",
        N_("{slow} has a startupProbe"),
        10,
        N_(
            "{slow} needs a startupProbe (httpGet /healthz on 8080, periodSeconds 2, "
            "failureThreshold 20) so liveness waits out the 30 s boot; probes cannot be "
            "changed on a running pod: `kubectl -n $namespace delete pod {slow}` and apply "
            "fastapi-slow-startup.yaml again"
        ),
        (PODS,),
        _slow_has_startup_probe,
    ),
    Check(
        "slow-ready",
        N_("{slow} became Ready with 0 restarts"),
        10,
        N_(
            "{slow} must become Ready without restarts: a restart means liveness ran before "
            "the app listened (no startupProbe, or one too short for 30 s); not Ready after "
            "about 40 s means a probe aims at the wrong port or path"
        ),
        (PODS,),
        _ready_without_restarts(SLOW),
    ),
    Check(
        "service-account-pull-secret",
        N_("ServiceAccount {account} carries the pull secret"),
        15,
        N_(
            "kubectl -n $namespace patch serviceaccount {account} -p "
            """'{{"imagePullSecrets":[{{"name":"{secret}"}}]}}' """
            "(pods created afterwards pull with it)"
        ),
        (ACCOUNTS,),
        _account_carries_secret,
    ),
    Check(
        "pull-secret-type",
        N_("secret {secret} is a {secret_type} secret"),
        10,
        N_(
            "create it with `kubectl -n $namespace create secret docker-registry "
            "{secret} --docker-server=<registry> --docker-username=AWS "
            '--docker-password="$(aws ecr get-login-password)"`; kubelet ignores any other '
            "type (a generic/Opaque secret does not authenticate pulls)"
        ),
        (SECRETS,),
        _secret_has_pull_type,
    ),
    Check(
        "service-endpoint",
        N_("Service {service} has {good} as a ready endpoint"),
        15,
        N_(
            "apply fastapi-svc.yaml (selector app: fastapi-good, targetPort 8080); only a "
            "Ready pod with that label is an endpoint: `kubectl -n $namespace get "
            "endpointslices -l kubernetes.io/service-name={service}`"
        ),
        (SERVICES, SLICES, PODS),
        _service_has_good_endpoint,
    ),
)


def grade(snapshot: Snapshot, rubric: Sequence[Check] = RUBRIC) -> tuple[Result, ...]:
    return tuple(check.run(snapshot) for check in rubric)


# --- students ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    """Where one student's lab lives: a kubeconfig context and a namespace."""

    context: str
    namespace: str = SEED_NAMESPACE


@dataclass(frozen=True)
class Grade:
    """One student's results, or why none could be had (an unreachable cluster)."""

    student: Student
    results: tuple[Result, ...] = ()
    error: str | None = None

    @property
    def score(self) -> int:
        return sum(r.points for r in self.results)

    @property
    def total(self) -> int:
        return sum(c.points for c in RUBRIC)

    def passed(self, pass_mark: int) -> bool:
        return self.error is None and self.score >= pass_mark


def verify(student: Student, api: client.ApiClient) -> Grade:
    """Read and grade one student's namespace; a cluster problem becomes the grade's error."""
    try:
        kube.check_reachable(api)
        return Grade(student, grade(read_namespace(api, student.namespace)))
    except ProbelabError as error:
        return Grade(student, error=str(error))
