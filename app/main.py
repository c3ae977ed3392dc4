"""The probe lab's FastAPI service.

Endpoints: ``/`` greets, ``/healthz`` is the liveness target, ``/ready`` the readiness
target, and ``/admin`` always answers 403, standing in for a path that needs auth (the
seed's cause B: a liveness probe aimed at the wrong endpoint). uvicorn serves it on 8080.

One image serves every lab, so each misbehaviour is an environment variable, off unless set:

``SLOW_START=1`` with ``STARTUP_SLEEP=<s>``
    Sleep that long during startup. uvicorn opens its port only after startup finishes,
    so nothing answers meanwhile: the seed's slow-booting app (cause A).
``HEALTH_FAIL_AFTER=<s>``
    ``/healthz`` answers 500 once the process has been up that long: a hung or
    deadlocked process that is still running.
``HEALTH_DELAY=<s>``
    ``/healthz`` waits that long before answering: a health check slower than the probe's
    timeout (cause C). The wait is asynchronous, so every other request is still served.
``READY_DEPENDENCY_URL=<url>`` with ``READY_DEPENDENCY_TIMEOUT=<s>`` (default 1)
    ``/ready`` answers 503 unless a GET to the URL returns 2xx within the timeout: a
    readiness check that includes a dependency (cause D, done the right way round).
``IGNORE_SIGTERM=1``
    Ignore SIGTERM (set before the startup sleep), like a shell-form CMD whose PID 1 swallows
    it: a kill then lasts the whole grace period and ends with SIGKILL.

The effective configuration is logged in one line at startup; none of it is secret.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse

# uvicorn configures this logger, so our line lands next to "Started server process".
log = logging.getLogger("uvicorn.error")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
IgnoreTerm = Callable[[], None]


def _ignore_sigterm() -> None:
    """Replace uvicorn's SIGTERM handler, which it installs before running the lifespan."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _seconds(env: Mapping[str, str], name: str, default: float | None = None) -> float | None:
    """Read a non-negative number of seconds; fail loudly so a typo never means 'off'."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """The knobs, parsed once so handlers never touch the environment."""

    startup_sleep: float = 0.0
    health_fail_after: float | None = None
    health_delay: float = 0.0
    ready_dependency_url: str | None = None
    ready_dependency_timeout: float = 1.0
    ignore_sigterm: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Like the seed, STARTUP_SLEEP counts only when SLOW_START is exactly "1"."""
        slow_start = env.get("SLOW_START", "0") == "1"
        timeout = _seconds(env, "READY_DEPENDENCY_TIMEOUT", 1.0)
        return cls(
            startup_sleep=(_seconds(env, "STARTUP_SLEEP") or 0.0) if slow_start else 0.0,
            health_fail_after=_seconds(env, "HEALTH_FAIL_AFTER"),
            health_delay=_seconds(env, "HEALTH_DELAY") or 0.0,
            ready_dependency_url=env.get("READY_DEPENDENCY_URL", "").strip() or None,
            ready_dependency_timeout=timeout if timeout is not None else 1.0,
            ignore_sigterm=env.get("IGNORE_SIGTERM", "0") == "1",
        )

    def describe(self) -> str:
        """One log line; 'off' makes an unset knob obvious in `kubectl logs`."""
        knobs: dict[str, object] = {
            "startup_sleep": self.startup_sleep or None,
            "health_fail_after": self.health_fail_after,
            "health_delay": self.health_delay or None,
            "ready_dependency_url": self.ready_dependency_url,
            "ready_dependency_timeout": self.ready_dependency_timeout,
            "ignore_sigterm": self.ignore_sigterm or None,
        }
        shown = " ".join(f"{k}={'off' if v is None else v}" for k, v in knobs.items())
        return f"probelab app config: {shown}"


def _answers_2xx(url: str, timeout: float) -> bool:
    """Blocking GET; any error, timeout or non-2xx counts as 'dependency down'."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (OSError, ValueError):  # URLError/HTTPError/socket timeouts are OSErrors
        return False


async def dependency_reachable(url: str, timeout: float) -> bool:
    """Run the blocking check in a thread and bound the whole call, not each socket step."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_answers_2xx, url, timeout), timeout)
    except TimeoutError:
        return False


def create_app(
    settings: Settings,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    ignore_term: IgnoreTerm = _ignore_sigterm,
) -> FastAPI:
    """Build the app; clock, sleep and signals are parameters so tests stay in-process."""
    born = clock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(settings.describe())
        if settings.ignore_sigterm:
            ignore_term()
        if settings.startup_sleep:
            await sleep(settings.startup_sleep)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def root() -> JSONResponse:
        return JSONResponse({"msg": "hello"})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if settings.health_delay:
            await sleep(settings.health_delay)
        if settings.health_fail_after is not None and clock() - born >= settings.health_fail_after:
            return JSONResponse({"status": "failing"}, status_code=500)
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        url = settings.ready_dependency_url
        if url and not await dependency_reachable(url, settings.ready_dependency_timeout):
            return JSONResponse({"ready": False, "dependency": url}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/admin")
    async def admin() -> JSONResponse:
        return JSONResponse({"detail": "authentication required"}, status_code=403)

    return app


app = create_app(Settings.from_env(os.environ))
