"""Unit tests see none of the caller's PROBELAB_* settings.

A CI job that exports, say, PROBELAB_KIND_NODE_IMAGE=build for its kind session must not
turn a unit test of kind's bring-up into a real Kubernetes build; tests that need a setting
set it themselves with monkeypatch.
"""

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_probelab_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [name for name in os.environ if name.startswith("PROBELAB_")]:
        monkeypatch.delenv(name)
    yield
