"""Bad input to `pytest labs/` ends in one clear line and a non-zero exit.

Each case runs a real pytest session in a subprocess (pytest's own pytester) with the
installed plugin, so what is checked is exactly what a student would see.
"""

from pathlib import Path

import pytest

USES_SCENARIO = """
import pytest

@pytest.mark.scenario("demo", "nope.yaml")
def test_demo(lab):
    pass
"""

USES_CLUSTER = """
def test_needs_cluster(kube_api):
    pass
"""

UNREACHABLE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: nobody
  user: {token: not-a-real-token}
contexts:
- name: gone
  context: {cluster: gone, user: nobody}
current-context: gone
"""


def test_unknown_cluster_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_CLUSTER)
    result = pytester.runpytest_subprocess("--cluster=bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cluster: invalid choice: 'bogus'*"])


def test_existing_cluster_needs_a_named_context(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_CLUSTER)
    result = pytester.runpytest_subprocess("--cluster=existing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cluster=existing needs --kube-context=NAME*"])


@pytest.mark.parametrize("version", ["1.29", "banana", "1.40"])
def test_a_bad_kubernetes_version_is_a_usage_error(pytester: pytest.Pytester, version: str) -> None:
    """Refused with the supported range before a cluster is touched or anything built."""
    pytester.makepyfile(USES_CLUSTER)
    result = pytester.runpytest_subprocess(f"--kubernetes-version={version}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*supported: 1.33 to 1.36*"])


def test_missing_manifest_stops_before_any_cluster_work(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_SCENARIO)
    manifests = pytester.mkdir("manifests")
    result = pytester.runpytest_subprocess(f"--manifests-dir={manifests}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*no manifest nope.yaml in {manifests}*"])


def test_unreachable_cluster_fails_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_CLUSTER)
    kubeconfig = pytester.makefile(".yaml", kubeconfig=UNREACHABLE_KUBECONFIG)
    result = pytester.runpytest_subprocess(
        "--cluster=existing", "--kube-context=gone", f"--kubeconfig={kubeconfig}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the cluster at https://127.0.0.1:1 is unreachable*"])
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "not-a-real-token" not in output
    assert "During handling of the above exception" not in output, "one line, not a chain"


def test_missing_kubeconfig_names_the_file(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(USES_CLUSTER)
    missing = tmp_path / "no-such-kubeconfig"
    result = pytester.runpytest_subprocess(
        "--cluster=existing", "--kube-context=gone", f"--kubeconfig={missing}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*cannot load context 'gone' from {missing}*"])


def test_acting_scenarios_tests_run_first_in_their_own_order(pytester: pytest.Pytester) -> None:
    """Order only: a waiting scenario's tests keep theirs too, after the acting ones."""
    manifests = pytester.mkdir("manifests")
    for name in ("waits.yaml", "acts.yaml"):
        (manifests / name).write_text("{}\n")
    pytester.makepyfile(
        test_a_waits="""
import pytest
pytestmark = pytest.mark.scenario("waits", "waits.yaml")
def test_one(lab): pass
def test_two(lab): pass
""",
        test_b_acts="""
import pytest
pytestmark = pytest.mark.scenario("acts", "acts.yaml", acts=True)
def test_three(lab): pass
def test_four(lab): pass
""",
    )
    pytester.makepyfile(test_c_plain="def test_five(): pass\n")
    result = pytester.runpytest_subprocess(f"--manifests-dir={manifests}", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    collected = [line.split("::")[1] for line in result.stdout.lines if "::" in line]
    assert collected == ["test_three", "test_four", "test_one", "test_two", "test_five"]
