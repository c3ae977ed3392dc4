"""Preflight refuses to start `up` on a machine where it would fail halfway.

The port checks hold real listening sockets on 127.0.0.1. The ports are taken below 53
(we are root) because the checks run in port order and the fixed ports from 53 upwards
may belong to a local cluster running on this machine; a held port below them is
therefore the first one checked, whatever else is running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from probelab.clusters.local import preflight
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.processes import Supervisor
from probelab.errors import ProbelabError

IS_ROOT = os.geteuid() == 0
HAS_PACKAGES = all(shutil.which(cmd) for cmd in preflight.REQUIRED_COMMANDS) and all(
    os.access(f"/usr/lib/cni/{plugin}", os.X_OK) for plugin in preflight.CNI_PLUGINS
)
needs_root_and_packages = pytest.mark.skipif(
    not (IS_ROOT and HAS_PACKAGES),
    reason="the checks after the root and package checks need root and the Debian packages",
)


def supervisor_for(config: LocalClusterConfig) -> Supervisor:
    return Supervisor(config.layout.run, config.layout.logs)


def listen_below(limit: int) -> socket.socket:
    """A socket listening on the highest free 127.0.0.1 port under `limit`."""
    for port in range(limit - 1, 0, -1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen()
        return sock
    pytest.skip(f"no free port below {limit} on 127.0.0.1")


@pytest.fixture
def held_ports() -> Iterator[tuple[int, int]]:
    """Two listening ports, lower first, both below every fixed port preflight checks."""
    high = listen_below(53)
    low = listen_below(high.getsockname()[1])
    try:
        yield low.getsockname()[1], high.getsockname()[1]
    finally:
        low.close()
        high.close()


@needs_root_and_packages
def test_port_in_use_is_named_with_its_component(
    tmp_path: Path, held_ports: tuple[int, int]
) -> None:
    """A port conflict would otherwise surface as a crash-looping component minutes later."""
    _, port = held_ports
    config = LocalClusterConfig(home=tmp_path / "home", registry_port=port, min_free_disk_gib=0)

    with pytest.raises(ProbelabError) as raised:
        preflight.check(config, supervisor_for(config))

    message = str(raised.value)
    assert message.startswith(f"port {port} (for registry) is already in use")
    assert f"sport = :{port}" in message


@needs_root_and_packages
def test_port_of_a_component_already_running_is_not_a_conflict(
    tmp_path: Path, held_ports: tuple[int, int]
) -> None:
    """A component this cluster already runs holds its own port; only strangers count."""
    etcd_port, registry_port = held_ports
    config = LocalClusterConfig(
        home=tmp_path / "home",
        etcd_client_port=etcd_port,
        registry_port=registry_port,
        min_free_disk_gib=0,
    )
    supervisor = supervisor_for(config)
    supervisor.start("etcd", ["sleep", "30"])
    try:
        with pytest.raises(ProbelabError) as raised:
            preflight.check(config, supervisor)
    finally:
        supervisor.stop("etcd", grace_seconds=1.0)

    assert str(raised.value).startswith(f"port {registry_port} (for registry) is already in use")


def test_ports_cover_the_configured_ports_and_the_node_address() -> None:
    """Changing a port in the config must change what preflight checks."""
    config = LocalClusterConfig(
        apiserver_port=16443, etcd_client_port=12379, etcd_peer_port=12380, registry_port=15443
    )

    ports = preflight.ports(config)

    assert ports[16443] == (config.node_ip, "kube-apiserver")
    assert ports[12379] == ("127.0.0.1", "etcd")
    assert ports[12380] == ("127.0.0.1", "etcd")
    assert ports[15443] == ("127.0.0.1", "registry")
    assert 6443 not in ports and 2379 not in ports and 5443 not in ports


@needs_root_and_packages
def test_low_disk_names_the_free_and_the_needed_space(tmp_path: Path) -> None:
    """Building Kubernetes fills a small disk halfway through; say so before starting."""
    home = tmp_path / "home"
    config = LocalClusterConfig(home=home, min_free_disk_gib=10**9)

    with pytest.raises(ProbelabError) as raised:
        preflight.check(config, supervisor_for(config))

    message = str(raised.value)
    assert message.startswith("only ")
    assert f"GiB free under {home}; the local cluster needs 1000000000 GiB" in message
    assert "PROBELAB_HOME" in message


NON_ROOT_CHECK = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    # The interpreter's standard library may sit where uid 65534 cannot read, so every
    # module is imported first; preflight reads the effective uid when `check` runs.
    from probelab.clusters.local import preflight
    from probelab.clusters.local.config import LocalClusterConfig
    from probelab.clusters.local.processes import Supervisor
    from probelab.errors import ProbelabError

    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    config = LocalClusterConfig(home=Path(sys.argv[1]))
    try:
        preflight.check(config, Supervisor(config.layout.run, config.layout.logs))
    except ProbelabError as error:
        print(error)
        sys.exit(10)
    """
)


@pytest.mark.skipif(not IS_ROOT, reason="dropping to another uid needs root")
def test_non_root_is_refused_first(tmp_path: Path) -> None:
    """Without root nothing else can work, so it is the first thing said."""
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-c", NON_ROOT_CHECK, str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 10, result.stderr
    assert result.stdout.startswith("the local cluster needs root")
    assert "run as root or with sudo" in result.stdout
    assert not home.exists(), "nothing is created before the root check"
