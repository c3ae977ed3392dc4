"""Stopping a recorder ends its watches at once, not when their windows close: every lab
teardown, calibration and observation run waits for that."""

import time

import pytest
from kubernetes import client

from probelab.recorder import WATCH_WINDOW_SECONDS, Recorder
from probelab.timeline import Timeline

pytestmark = pytest.mark.cluster


def test_stop_ends_the_watches_well_inside_their_window(kube_api: client.ApiClient) -> None:
    recorder = Recorder(kube_api, "default", Timeline()).start()
    time.sleep(0.5)  # not a synchronisation: lets each watch request be in flight, idle
    asked = time.monotonic()
    recorder.stop()
    recorder.join()
    took = time.monotonic() - asked
    assert took < WATCH_WINDOW_SECONDS / 2, f"the watches ended {took:.1f}s after the stop"
