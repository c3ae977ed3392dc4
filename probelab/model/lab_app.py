"""The lab app's facts (``app/main.py`` and ``app/Dockerfile``), in one place.

predict, lint, diagnose, verify and the labs all read these, so a change to the app is a
change here and nowhere else.
"""

from __future__ import annotations

IMAGE_NAME = "fastapi-health"
"""Repository name of the lab's image, wherever it was pushed."""
PLACEHOLDER_REPOSITORY = f"YOUR_REGISTRY/{IMAGE_NAME}"
"""The seed's image placeholder in every shipped manifest."""
PORT = 8080
"""uvicorn's port (the Dockerfile's CMD ``--port 8080``)."""
HEALTH_PATH = "/healthz"
"""The process-only check: the liveness target."""
READY_PATH = "/ready"
"""The readiness target; 503 while READY_DEPENDENCY_URL does not answer 2xx."""
STATUSES = {"/": 200, HEALTH_PATH: 200, READY_PATH: 200, "/admin": 403, "/docs": 200}
"""What each path answers; any other path is FastAPI's 404."""
OTHER_STATUS = 404
MISSING_EXECUTABLES = frozenset({"curl", "wget", "nc", "grpc_health_probe"})
"""What exec probes commonly call and the image (python:3.11-slim plus pip) lacks."""
CLOCK_LEAD = 0.05
"""The app's clock (HEALTH_FAIL_AFTER counts from it) starts this long before it listens."""
# The knobs (environment variables) and what they do.
SLOW_START = "SLOW_START"  # "1" turns STARTUP_SLEEP on
STARTUP_SLEEP = "STARTUP_SLEEP"  # seconds before uvicorn listens
HEALTH_FAIL_AFTER = "HEALTH_FAIL_AFTER"  # /healthz answers 500 from then on
HEALTH_DELAY = "HEALTH_DELAY"  # /healthz answers this late
READY_DEPENDENCY_URL = "READY_DEPENDENCY_URL"  # /ready answers 503 unless it answers 2xx
IGNORE_SIGTERM = "IGNORE_SIGTERM"  # "1": only SIGKILL stops it
KNOBS = (SLOW_START, STARTUP_SLEEP, HEALTH_FAIL_AFTER, HEALTH_DELAY, READY_DEPENDENCY_URL,
         IGNORE_SIGTERM, "READY_DEPENDENCY_TIMEOUT")  # fmt: skip


def is_lab_image(image: str) -> bool:
    """The lab's app, whether still the seed's placeholder or pushed to a registry."""
    name = image.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == IMAGE_NAME
