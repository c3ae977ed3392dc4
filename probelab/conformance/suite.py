"""Run upstream's probe specs with ginkgo against a cluster, and clean up after them.

ginkgo runs e2e.test in parallel processes and writes upstream's JUnit. It runs in its own
session, so a Ctrl-C reaches it only through us: we pass it on as ginkgo's own interrupt
(the specs' cleanup runs), give it a grace period, then kill it. Whatever happens, every
namespace the suite made (the framework labels each one) is deleted and waited for, and
an image kubelet could not pull is named.
"""

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.clusters.local.build import SuiteBinaries
from probelab.conformance.pods import PodLog, PodRecord
from probelab.conformance.results import SpecResult, read_ginkgo_report
from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.progress import say, step

# The two Describe blocks of test/e2e/common/node/container_probe.go.
FOCUS = (r"\[sig-node\] Probing container ", r"Probing restartable init container ")
# The framework labels every namespace it makes with its base name under this key.
FRAMEWORK_LABEL = "e2e-framework"
JUNIT_FILE = "junit_01.xml"
GINKGO_REPORT = Path("ginkgo") / "report.json"
# After an interrupt, how long ginkgo gets to run the specs' own cleanup.
STOP_GRACE_SECONDS = 60.0
NAMESPACE_DELETE_TIMEOUT = 180.0


@dataclass(frozen=True)
class SuiteRun:
    """What to run, where, and where the reports go."""

    binaries: SuiteBinaries
    kubeconfig: Path
    context: str | None
    report_dir: Path
    focus: Sequence[str] = FOCUS
    procs: int = 2
    timeout: float = 3600.0  # the whole suite; ginkgo then reports running specs timed out
    repo_list: Path | None = None  # upstream's KUBE_TEST_REPO_LIST: other image registries

    def argv(self) -> list[str]:
        suite_flags = [
            f"--kubeconfig={self.kubeconfig}",
            f"--report-dir={self.report_dir}",
            "--report-complete-ginkgo",
            f"--e2e-output-dir={self.report_dir}",
        ]
        if self.context:
            suite_flags.append(f"--context={self.context}")
        if self.repo_list:
            suite_flags.append(f"--kube-test-repo-list={self.repo_list}")
        return [
            str(self.binaries.ginkgo),
            f"--procs={self.procs}",
            *(f"--focus={pattern}" for pattern in self.focus),
            f"--timeout={int(self.timeout)}s",
            "--silence-skips",
            "--no-color",
            str(self.binaries.e2e),
            "--",
            *suite_flags,
        ]


@dataclass
class SuiteOutcome:
    """What a run did, for the summary, the benchmark and the docs."""

    specs: list[SpecResult]
    seconds: float
    exit_code: int
    junit: Path
    pods: dict[str, PodRecord]  # by namespace/name
    pull_failures: dict[str, str]  # image -> the pod and kubelet's message
    made_namespaces: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)  # the suite's; deleted by us


def run(suite: SuiteRun, api: client.ApiClient, lock_file: Path) -> SuiteOutcome:
    """Run the suite once; namespaces are cleaned up on failure and Ctrl-C too."""
    suite.report_dir.mkdir(parents=True, exist_ok=True)
    for stale in (suite.report_dir / JUNIT_FILE, suite.report_dir / GINKGO_REPORT):
        stale.unlink(missing_ok=True)
    with _exclusive(lock_file):
        before = set(_e2e_namespaces(api))
        verdicts: dict[str, bool] = {}

        def mine(namespace: str) -> bool:
            if namespace not in verdicts:
                verdicts[namespace] = namespace not in before and _is_e2e(api, namespace)
            return verdicts[namespace]

        pods = PodLog(api, mine).start()
        started = time.monotonic()
        exit_code = -1
        try:
            exit_code = _run_ginkgo(suite.argv(), suite.timeout + STOP_GRACE_SECONDS)
        finally:
            pods.stop()
            made = sorted(
                {ns for ns, ours in verdicts.items() if ours} | (set(_e2e_namespaces(api)) - before)
            )
            left = _delete_namespaces(api, sorted(set(_e2e_namespaces(api)) - before))
        seconds = time.monotonic() - started
    report = suite.report_dir / GINKGO_REPORT
    specs = read_ginkgo_report(report, suite.focus) if report.is_file() else []
    junit = suite.report_dir / JUNIT_FILE
    return SuiteOutcome(specs, seconds, exit_code, junit, pods.pods, pods.pull_failures, made, left)


def _is_e2e(api: client.ApiClient, namespace: str) -> bool:
    try:
        found = client.CoreV1Api(api).read_namespace(namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return FRAMEWORK_LABEL in ((found.metadata.labels or {}) if found.metadata else {})


def _e2e_namespaces(api: client.ApiClient) -> list[str]:
    listing = kube.retry_transient(client.CoreV1Api(api).list_namespace)(
        label_selector=FRAMEWORK_LABEL
    )
    return [ns.metadata.name for ns in listing.items if ns.metadata and ns.metadata.name]


def _run_ginkgo(argv: list[str], deadline: float) -> int:
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        return process.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        say(_("the suite ran past {seconds:.0f}s; interrupting it").format(seconds=deadline))
        return _stop(process)
    except KeyboardInterrupt:
        say(_("interrupted; letting the specs clean up (Ctrl-C again is ignored)"))
        with _ignoring_sigint():
            _stop(process)
        raise


def _stop(process: "subprocess.Popen[bytes]") -> int:
    """ginkgo's interrupt first (the specs' cleanup runs), then a kill after the grace."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


@contextmanager
def _ignoring_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _delete_namespaces(api: client.ApiClient, names: list[str]) -> list[str]:
    """Delete the suite's leftover namespaces and wait until they are gone."""
    if not names:
        return []
    what = _("deleting {count} namespaces the suite left: {names}")
    with step(what.format(count=len(names), names=", ".join(names))):
        for name in names:
            kube.delete_namespace(api, name)
        for name in names:
            kube.delete_namespace(api, name, timeout=NAMESPACE_DELETE_TIMEOUT)
    return names


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One run per cluster: two would delete each other's namespaces and share the CPU."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProbelabError(
                _("another `probelab conformance run` is using this cluster ({lock})").format(
                    lock=lock_file
                )
            ) from None
        yield
