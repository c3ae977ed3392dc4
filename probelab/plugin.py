"""The pytest plugin: options and fixtures that hand labs a ready scenario.

It only wires parts together. A session brings up (or connects to) one cluster, builds and
pushes the lab image once, and starts every scenario the selected tests need at the same
moment, each in its own namespace, so the lab takes about as long as its slowest scenario.
A test marked `@pytest.mark.scenario(name, *manifests, pull_secret=True)` receives that
scenario as the `lab` fixture. Namespaces are deleted at the end, on failure and on Ctrl-C
too; a failed test's report carries the scenario's timeline, events and previous logs.
"""

import json
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from kubernetes import client

from probelab import clusters, kube, report_masking, student_manifests
from probelab.cleanup import Cleanup
from probelab.clusters.base import ClusterHandle
from probelab.clusters.local import releases
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError
from probelab.i18n import LANGUAGES, _, set_language
from probelab.images import build_and_push
from probelab.lab import Lab, Scenario, namespace_name
from probelab.manifests import find_manifest
from probelab.model.rules import Kubelet
from probelab.predict import model_errors
from probelab.progress import say, step
from probelab.registries import ecr
from probelab.registries.base import Registry
from probelab.registries.ecr_session import open_ecr
from probelab.report import ScenarioRecord, outcomes, record, write_run
from probelab.runs import RunLease
from probelab.scenario import ScenarioLab, WaitRecord
from probelab.secrets import SECRETS
from probelab.signals import InterruptLadder
from probelab.validation import check_namespace_prefix, check_output_dir

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["probelab.pytest_progress"]  # progress lines shown while tests run
T = TypeVar("T")
SCENARIOS = pytest.StashKey[dict[str, Scenario]]()
RECORDS = pytest.StashKey[list[ScenarioRecord]]()  # for the report, in scenario order
WAITS = pytest.StashKey[list[WaitRecord]]()  # every lab wait: its forecast and outcome
KUBERNETES_VERSION = pytest.StashKey[releases.Request | None]()
REGISTRY_CHOICES = ("auto", "local", "kind", "ecr")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("probelab", "probelab: run the probe lab on a real cluster")
    group.addoption(
        "--cluster",
        choices=clusters.CHOICES,
        default="auto",
        help="where pods run (auto: kind if present, else the local cluster)",
    )
    group.addoption(
        "--kube-context",
        default=None,
        help="kubeconfig context for --cluster=existing (required there)",
    )
    group.addoption(
        "--kubeconfig",
        default=None,
        type=Path,
        help="kubeconfig file for --cluster=existing (default: the usual one)",
    )
    group.addoption(
        "--kubernetes-version",
        default=None,
        metavar="VERSION",
        help=f"the local cluster's Kubernetes: a minor ({releases.supported_range()}, its "
        "newest patch) or a patch such as 1.34.2; another than the running one replaces it "
        f"(default ${releases.ENVIRONMENT}, else the running version, else "
        f"{releases.DEFAULT_KUBERNETES})",
    )
    group.addoption(
        "--registry",
        choices=REGISTRY_CHOICES,
        default="auto",
        help="where the lab image is pushed (auto: the cluster's own registry)",
    )
    group.addoption(
        "--ecr-region",
        default=None,
        type=ecr.region_option,
        help=f"--registry=ecr: AWS region (default: boto3's, else {ecr.DEFAULT_REGION})",
    )
    group.addoption(
        "--ecr-repository",
        default=ecr.DEFAULT_REPOSITORY,
        type=ecr.repository_option,
        help="--registry=ecr: repository for the lab image, created when missing",
    )
    group.addoption(
        "--keep-cluster",
        action="store_true",
        help="leave a cluster probelab started running after the session",
    )
    group.addoption(
        "--namespace-prefix", default="probelab", help="prefix of the per-scenario namespaces"
    )
    group.addoption(
        "--report-dir",
        default=None,
        type=Path,
        help="write the lab report here: an index and, per scenario, Markdown and HTML "
        "pages with its timeline, events, previous logs and a picture",
    )
    group.addoption(
        "--lang",
        choices=LANGUAGES,
        default=None,
        help="language of the lab's explanations (default: Korean in a ko* locale, else English)",
    )
    group.addoption(
        "--app-dir", default=ROOT / "app", type=Path, help="build context of the lab image"
    )
    group.addoption(
        "--manifests-dir",
        default=ROOT / "manifests",
        type=Path,
        help="where the lab's manifests are",
    )
    group.addoption(
        "--manifests",
        dest="student_manifests",
        default=None,
        type=Path,
        metavar="DIR",
        help="run the lab on your own copies of its manifests in DIR (files missing there "
        "come from --manifests-dir); a failure then also shows lint and a diff of yours",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(name, *manifests, pull_secret=True): the lab scenario a test assesses"
    )
    report_masking.install(config)  # every registry's secrets stay out of pytest's output
    LADDER.install()
    set_language(config.getoption("lang"))
    student = config.getoption("student_manifests")
    if student is not None and not student.is_dir():
        raise pytest.UsageError(_("--manifests {dir}: no such directory").format(dir=student))
    if config.getoption("cluster") == "existing" and not config.getoption("kube_context"):
        raise pytest.UsageError("--cluster=existing needs --kube-context=NAME")
    try:  # options that would only fail late, after the build or the whole session
        check_namespace_prefix(config.getoption("namespace_prefix"))
        if config.getoption("report_dir") is not None:
            check_output_dir("--report-dir", config.getoption("report_dir"))
    except ProbelabError as error:
        raise pytest.UsageError(str(error)) from None
    try:  # a bad version is a usage error, before any cluster work
        config.stash[KUBERNETES_VERSION] = releases.requested(
            config.getoption("kubernetes_version")
        )
    except ProbelabError as error:
        raise pytest.UsageError(str(error)) from None


# SIGTERM (a CI job cancelled, `kill`) tears down as Ctrl-C does; a repeat while tearing
# down is reported, not obeyed at once (probelab/signals.py).
LADDER = InterruptLadder()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember the scenarios the selected tests need, so they can all start at once, and
    run the tests of acting scenarios first (`Scenario.acts`), in their own order."""
    scenarios = _remember_scenarios(config, items)
    items.sort(
        key=lambda item: not scenarios[name].acts if (name := _scenario_name(item)) else True
    )


def _scenario_name(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("scenario")
    return str(marker.args[0]) if marker is not None else None


def _remember_scenarios(config: pytest.Config, items: list[pytest.Item]) -> dict[str, Scenario]:
    """Every scenario `items` use, each declared one way only and with all its manifests."""
    scenarios: dict[str, Scenario] = {}
    manifests_dir: Path = config.getoption("manifests_dir")
    student: Path | None = config.getoption("student_manifests")
    for item in items:
        marker = item.get_closest_marker("scenario")
        if marker is not None:
            scenario = _scenario(marker)
            if scenarios.setdefault(scenario.name, scenario) != scenario:
                raise pytest.UsageError(
                    f"scenario {scenario.name!r} is declared twice, differently"
                )
            missing = [
                m
                for m in scenario.manifests
                if not find_manifest(m, manifests_dir, student).is_file()
            ]
            if missing:
                raise pytest.UsageError(
                    f"{item.nodeid}: no manifest {', '.join(missing)} in {manifests_dir}"
                )
    config.stash[SCENARIOS] = scenarios
    if student is not None and scenarios:
        _say_whose_manifests(scenarios, student)
    return scenarios


def _say_whose_manifests(scenarios: dict[str, Scenario], student: Path) -> None:
    """Name the student's files the lab will run; none at all is surely the wrong folder."""
    wanted = sorted({m for scenario in scenarios.values() for m in scenario.manifests})
    theirs = [m for m in wanted if (student / m).is_file()]
    if not theirs:
        raise pytest.UsageError(
            _("--manifests {dir} holds none of the lab's manifests ({names})").format(
                dir=student, names=", ".join(wanted)
            )
        )
    say(
        _("your manifests from {dir}: {names}; the others are the shipped ones").format(
            dir=student, names=", ".join(theirs)
        )
    )


def _scenario(marker: pytest.Mark) -> Scenario:
    name, *manifests = marker.args
    return Scenario(name, tuple(manifests), **marker.kwargs)


def _fail(error: ProbelabError) -> NoReturn:
    pytest.fail(SECRETS.mask(str(error)), pytrace=False)


def _or_fail(action: Callable[[], T]) -> T:
    """Run `action`; a ProbelabError fails the test with its one line.

    The failure is raised outside the `except` block so pytest shows no exception chain.
    """
    try:
        return action()
    except ProbelabError as error:
        failure = error
    _fail(failure)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[ClusterHandle]:
    """The cluster of this session; brought up when none is given (never skipped)."""
    option = request.config.getoption
    handle, teardown = _or_fail(
        lambda: clusters.bring_up(
            clusters.choose(option("cluster")),
            kubeconfig=option("kubeconfig"),
            context=option("kube_context"),
            kubernetes_version=request.config.stash[KUBERNETES_VERSION],
        )
    )
    yield handle
    if not option("keep_cluster"):
        teardown()


@pytest.fixture(scope="session")
def kube_api(cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    api = _or_fail(lambda: kube.api_client(cluster.kubeconfig, cluster.context))
    _or_fail(lambda: kube.check_reachable(api))
    yield api
    api.close()


@pytest.fixture(scope="session")
def registry(request: pytest.FixtureRequest, cluster: ClusterHandle) -> Iterator[Registry]:
    option = request.config.getoption
    choice = option("registry")
    if choice == "ecr":
        with ExitStack() as stack:

            def open_provider() -> ecr.EcrRegistry:
                provider = ecr.EcrRegistry(option("ecr_region"), option("ecr_repository"))
                provider.ensure_repository()  # AWS problems first, before any cluster work
                api = request.getfixturevalue("kube_api")
                stack.enter_context(open_ecr(provider, cluster.stand_in_store, api))
                return provider

            yield _or_fail(open_provider)
        return
    if choice in ("auto", cluster.provider) and cluster.registry is not None:
        yield cluster.registry
        return
    _fail(
        ProbelabError(
            f"--registry={choice} is not available with --cluster={cluster.provider} yet; "
            "the local cluster brings its own registry"
        )
    )


@pytest.fixture(scope="session")
def lab_image(request: pytest.FixtureRequest, cluster: ClusterHandle, registry: Registry) -> str:
    """The lab app built from `app/` and pushed, tagged by content."""
    engine = _or_fail(lambda: docker_client(cluster.docker_host))
    try:
        return _or_fail(
            lambda: build_and_push(engine, request.config.getoption("app_dir"), registry)
        )
    finally:
        engine.close()


class LabRun:
    """Every scenario of the session, started together on first use."""

    def __init__(
        self, config: pytest.Config, api: client.ApiClient, image: str, registry: Registry
    ) -> None:
        self.config = config
        self.api = api
        self.image = image
        self.registry = registry
        self.lease = RunLease(api)
        self.run_id = self.lease.run_id
        self.labs: dict[str, ScenarioLab] = {}

    def start_all(self) -> None:
        """Claim this run's namespaces, sweep those of killed runs, then set every scenario
        up at once: each waits on the API (its ServiceAccount, its first lists), so
        starting them one by one would add those waits up."""
        self.lease.acquire()
        self.lease.sweep()
        prefix = self.config.getoption("namespace_prefix")
        with model_errors():
            kubelet = Kubelet.parse(kube.kubelet_version(self.api))
        for scenario in self.config.stash[SCENARIOS].values():
            self.labs[scenario.name] = ScenarioLab(
                self.api,
                scenario,
                namespace=namespace_name(prefix, scenario.name),
                run_id=self.run_id,
                image=self.image,
                registry=self.registry,
                manifests_dir=self.config.getoption("manifests_dir"),
                student_manifests=self.config.getoption("student_manifests"),
                kubelet=kubelet,
            )
        if self.labs:
            with ThreadPoolExecutor(max_workers=len(self.labs)) as pool:
                for started in [pool.submit(lab.start) for lab in self.labs.values()]:
                    started.result()  # re-raises the first failure here

    def close(self) -> None:
        """Keep what the report needs (previous logs) before each namespace goes; every
        namespace is deleted even when recording or deleting another one failed. The
        scenarios are recorded and deleted side by side (API round trips, mostly), and
        their records kept in scenario order."""
        reporting = self.config.getoption("report_dir") is not None
        cleanup = Cleanup(_("deleting the lab's namespaces"))
        for lab in self.labs.values():
            cleanup.run(
                _("stopping the watches of {scenario}").format(scenario=lab.scenario.name),
                lab.stop_recording,
            )
        records = self.config.stash.setdefault(RECORDS, [])
        waits = self.config.stash.setdefault(WAITS, [])
        with (
            LADDER.tearing_down(),
            step(
                _("recording and deleting the lab's {count} namespaces").format(
                    count=len(self.labs)
                )
            ),
        ):
            if self.labs:
                with ThreadPoolExecutor(max_workers=len(self.labs)) as pool:
                    kept = list(pool.map(partial(_close, cleanup, reporting), self.labs.values()))
                for scenario_record, scenario_waits in filter(None, kept):
                    records.append(scenario_record)
                    waits.extend(scenario_waits)
            cleanup.run(_("releasing the run's lease"), self.lease.release)
        cleanup.check()


def _close(
    cleanup: Cleanup, reporting: bool, lab: ScenarioLab
) -> tuple[ScenarioRecord, list[WaitRecord]] | None:
    """One scenario's record (when reporting), then its namespace deleted, whatever the
    recording did."""
    kept: list[tuple[ScenarioRecord, list[WaitRecord]]] = []
    if reporting:
        cleanup.run(
            _("recording {scenario}").format(scenario=lab.scenario.name),
            lambda: kept.append((record(lab), list(lab.waits))),
        )
    cleanup.run(_("deleting namespace {name}").format(name=lab.namespace), lab.close)
    return kept[0] if kept else None


@pytest.fixture(scope="session")
def lab_run(
    request: pytest.FixtureRequest, kube_api: client.ApiClient, lab_image: str, registry: Registry
) -> Iterator[LabRun]:
    run = LabRun(request.config, kube_api, lab_image, registry)
    try:
        run.start_all()
        yield run
    finally:
        run.close()


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_run: LabRun) -> ScenarioLab:
    """The scenario named by the test's `scenario` marker, already started."""
    marker = request.node.get_closest_marker("scenario")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `lab` without a scenario marker")
    return lab_run.labs[_scenario(marker).name]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach what the scenario recorded: what a student would look at."""
    report = yield
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    lab = funcargs.get("lab")
    if report.failed and call.when == "call" and isinstance(lab, Lab):
        report.sections.append((f"probelab {lab.scenario.name}", SECRETS.mask(lab.evidence())))
        theirs = lab.students_manifests()
        if theirs and lab.student_manifests is not None:
            hint = student_manifests.hint(theirs, lab.student_manifests, lab.manifests_dir)
            report.sections.append((_("probelab: your manifests"), SECRETS.mask(hint)))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With --report-dir: every scenario's page and picture, and the index."""
    report_dir: Path | None = session.config.getoption("report_dir")
    if report_dir is None:
        return
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    reports = [
        r
        for phase in getattr(terminal, "stats", {}).values()
        for r in phase
        if isinstance(r, pytest.TestReport)
    ]
    scenario_of = {
        item.nodeid: _scenario(marker).name
        for item in getattr(session, "items", [])  # none when collection failed
        if (marker := item.get_closest_marker("scenario")) is not None
    }
    records = session.config.stash.get(RECORDS, [])
    write_run(report_dir, records, outcomes(reports, scenario_of))
    waits = [asdict(w) for w in session.config.stash.get(WAITS, [])]
    (report_dir / "waits.json").write_text(json.dumps(waits, indent=1))
