"""Bad input: one line naming the problem and its fix, exit 2, no traceback, nothing run.

Every case goes through the real `probelab` entry point in-process. Manifests are the
tutorial's bad-liveness pod with one thing broken, as the API server would refuse it (or
as no YAML reader could read it); options are the ones that take numbers or names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from probelab import cli

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "manifests" / "fastapi-liveness-bad.yaml").read_text()


def replaced(old: str, new: str) -> Callable[[Path], Path]:
    """A manifest writer: the good pod with `old` replaced by `new` (which must be there)."""

    def write(directory: Path) -> Path:
        assert old in GOOD, old
        path = directory / "pod.yaml"
        path.write_text(GOOD.replace(old, new, 1))
        return path

    return write


def raw(content: bytes) -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        path = directory / "pod.yaml"
        path.write_bytes(content)
        return path

    return write


def directory(parent: Path) -> Path:
    path = parent / "manifests.yaml"
    path.mkdir()
    return path


def missing(parent: Path) -> Path:
    return parent / "nope.yaml"


PROBE = "        httpGet:\n          path: /healthz\n          port: 8000\n"
# Each case: the manifest writer, and a word or two the one line must contain.
MANIFESTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "binary": (raw(b"\x00\x01\xff\xfe binary"), "not a UTF-8"),
    "latin-1": (raw("name: caf\xe9".encode("latin-1")), "not a UTF-8"),
    "directory": (directory, "directory"),
    "missing": (missing, "not found"),
    "empty": (raw(b""), "no objects"),
    "bad-yaml": (raw(b"kind: Pod\n  metadata: [\n"), "invalid YAML"),
    "a-list": (raw(b"- kind: Pod\n"), "not a mapping"),
    "no-kind": (replaced("kind: Pod\n", ""), "no kind"),
    "no-name": (replaced("  name: fastapi-bad\n", ""), "metadata.name"),
    "no-api-version": (replaced("apiVersion: v1\n", ""), "apiVersion"),
    "ports-scalar": (
        replaced("      ports:\n        - containerPort: 8080\n", "      ports: 8080\n"),
        "ports",
    ),
    "port-70000": (replaced("containerPort: 8080", "containerPort: 70000"), "port number"),
    "port-0": (replaced("containerPort: 8080", "containerPort: 0"), "port number"),
    "port-name-long": (
        replaced(
            "- containerPort: 8080", "- containerPort: 8080\n          name: a-very-long-port-name"
        ),
        "port name",
    ),
    "two-handlers": (
        replaced(PROBE, PROBE + "        tcpSocket:\n          port: 8080\n"),
        "2 handlers",
    ),
    "no-handler": (replaced(PROBE, ""), "no handler"),
    "period-1e20": (replaced("periodSeconds: 5", "periodSeconds: 1e20"), "periodSeconds"),
    "period-negative": (replaced("periodSeconds: 5", "periodSeconds: -1"), "periodSeconds"),
    "period-float": (replaced("periodSeconds: 5", "periodSeconds: 1.5"), "periodSeconds"),
    "threshold-string": (
        replaced("failureThreshold: 2", 'failureThreshold: "2"'),
        "failureThreshold",
    ),
    "env-mapping": (replaced("      ports:\n", "      env:\n        A: b\n      ports:\n"), "env"),
    "misspelt-field": (replaced("initialDelaySeconds: 3", "initialDelaySecond: 3"), "spelling"),
    "probe-port-70000": (replaced("port: 8000", "port: 70000"), "port number"),
    "probe-port-name": (replaced("port: 8000", "port: Not_A_Name"), "port name"),
    "liveness-success-2": (
        replaced("failureThreshold: 2", "failureThreshold: 2\n        successThreshold: 2"),
        "successThreshold",
    ),
    "container-name": (replaced("- name: app", "- name: App_1"), "DNS label"),
    "container-no-name": (replaced("- name: app\n      image:", "- image:"), "name"),
    "duplicate-names": (
        replaced("  containers:\n", "  containers:\n    - name: app\n      image: x\n"),
        "two containers",
    ),
    "containers-mapping": (
        replaced("  containers:\n    - name: app", "  containers:\n    app:\n      name: app"),
        "containers",
    ),
    "restart-policy": (
        replaced("restartPolicy: Always", "restartPolicy: Sometimes"),
        "restartPolicy",
    ),
    "probe-grace-0": (
        replaced(
            "failureThreshold: 2", "failureThreshold: 2\n        terminationGracePeriodSeconds: 0"
        ),
        "terminationGracePeriodSeconds",
    ),
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, out: str, err: str, words: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("probelab: ")
    assert words.lower() in lines[0].lower(), lines[0]
    assert not out, out  # nothing was linted or predicted


@pytest.mark.parametrize("command", ["lint", "predict"])
@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_bad_manifest(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write, words = MANIFESTS[case]
    code, out, err = run(capsys, command, str(write(tmp_path)))
    assert_one_line(code, out, err, words)


def test_the_good_manifest_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: the same pod unbroken is linted (exit 1: its wrong port is an error)."""
    path = replaced("apiVersion", "apiVersion")(tmp_path)
    code, out, err = run(capsys, "lint", str(path))
    assert code == 1 and "finding" in out and not err


OPTIONS: dict[str, tuple[list[str], str]] = {
    "duration-inf": (["predict", "{m}", "--duration", "inf"], "--duration"),
    "duration-nan": (["predict", "{m}", "--duration", "nan"], "--duration"),
    "duration-1e12": (["predict", "{m}", "--duration", "1e12"], "--duration"),
    "duration-negative": (["predict", "{m}", "--duration", "-5"], "--duration"),
    "duration-zero": (["predict", "{m}", "--duration", "0"], "--duration"),
    "boot-negative": (["predict", "{m}", "--boot", "-10"], "--boot"),
    "fail-after-inf": (["predict", "{m}", "--fail-after", "inf"], "--fail-after"),
    "listens-70000": (["predict", "{m}", "--listens", "70000"], "--listens"),
    "serves-bad": (["predict", "{m}", "--serves", "healthz"], "--serves"),
    "kubelet-version": (["predict", "{m}", "--kubelet-version", "one"], "kubelet version"),
    "startup-time-negative": (["lint", "{m}", "--startup-time", "-1"], "--startup-time"),
    "startup-time-nan": (["lint", "{m}", "--startup-time", "nan"], "--startup-time"),
    "observe-duration-negative": (["observe", "{m}", "--duration", "-5"], "--duration"),
    "observe-duration-inf": (["observe", "{m}", "--duration", "inf"], "--duration"),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_bad_option(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before anything runs: `observe` would build an image and use the cluster."""
    from probelab.commands import observe

    def no_cluster(app_dir: Path) -> None:
        raise AssertionError("reached the cluster before checking its options")

    monkeypatch.setattr(observe, "local_target", no_cluster)
    argv, words = OPTIONS[case]
    manifest = replaced("apiVersion", "apiVersion")(tmp_path)
    code, out, err = run(capsys, *(a.format(m=manifest) for a in argv))
    assert_one_line(code, out, err, words)


def test_there_are_at_least_forty_cases() -> None:
    assert len(MANIFESTS) * 2 + len(OPTIONS) >= 40
    assert re.search("x", "x")


KUBECONFIGS: dict[str, bytes | None] = {
    "directory": None,
    "garbage": b"::: [\n",
    "binary": b"\xff\xfe\x00",
    "a-string": b"just a string\n",
}


@pytest.mark.parametrize("case", sorted(KUBECONFIGS))
def test_unreadable_kubeconfig_is_one_clear_error(case: str, tmp_path: Path) -> None:
    from probelab import kube
    from probelab.errors import ProbelabError

    path = tmp_path / "kubeconfig"
    content = KUBECONFIGS[case]
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ProbelabError, match="not a readable kubeconfig"):
        kube.api_client(path, "ctx")


USES_CLUSTER = """
def test_needs_cluster(kube_api):
    pass
"""


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--namespace-prefix", "UPPER_case!"], "--namespace-prefix"),
        (["--namespace-prefix", "x" * 41], "--namespace-prefix"),
        (["--report-dir", "{file}"], "is a file"),
    ],
    ids=["prefix-not-a-label", "prefix-too-long", "report-dir-is-a-file"],
)
def test_pytest_options_refused_before_any_cluster_work(
    pytester: pytest.Pytester, option: list[str], words: str
) -> None:
    """A usage error at configure time: no cluster, no build (the session never starts)."""
    pytester.makepyfile(USES_CLUSTER)
    a_file = pytester.path / "report.txt"
    a_file.write_text("")
    args = [a.format(file=a_file) for a in option]
    result = pytester.runpytest_subprocess("--cluster=existing", "--kube-context=none", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert words in err and "Traceback" not in err
    assert "collected" not in result.stdout.str()
