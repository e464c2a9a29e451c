"""Starting and stopping a pyfaas server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from pyfaas.api import ApiServices, create_app
from pyfaas.api.lambda_api import SigV4Verifier
from pyfaas.control import (
    EventService,
    FunctionService,
    InvocationService,
    LogQueryService,
    MetricsService,
)
from pyfaas.control.access import FailedAuthGuard, TokenService
from pyfaas.control.rollouts import RolloutService
from pyfaas.control.schedules import ScheduleService
from pyfaas.control.secrets import SecretService, load_key
from pyfaas.control.urls import FunctionUrlService
from pyfaas.control.versions import VersionService
from pyfaas.events import Dispatcher, DispatchSettings, Enqueuer
from pyfaas.events.schedules import Scheduler
from pyfaas.executor import ExecutorBackend, LocalExecutor
from pyfaas.executor.sandbox import Isolation
from pyfaas.metering import ActivityService, PriceBook, UsageService, UsageWriter
from pyfaas.model import ConfigurationError, FunctionConfig, PyfaasError
from pyfaas.packaging import CodeStore
from pyfaas.packaging.archive import zip_directory
from pyfaas.scaling import Scaler
from pyfaas.server.changes import ChangeApplier
from pyfaas.server.config import ServerConfig
from pyfaas.server.isolation import start_isolation
from pyfaas.sources import DeadLetter, PollSettings, SourceService
from pyfaas.store import Store, open_store
from pyfaas.telemetry import LogSweeper, LogWriter, RetentionPolicy
from pyfaas.telemetry.metrics import InvocationMetrics
from pyfaas.telemetry.tracing import Tracing

log = logging.getLogger("pyfaas.server")


def _executor(cfg: ServerConfig, isolation: Isolation) -> ExecutorBackend:
    """The executor backend ``cfg.executor`` names."""
    if cfg.executor == "ray":
        from pyfaas.executor.ray_backend import RayExecutor  # Ray is imported when used

        return RayExecutor(
            limits=cfg.limits,
            scratch_dir=cfg.home / "workers",
            idle_timeout_s=cfg.idle_timeout_s,
            address=cfg.ray_address,
        )
    return LocalExecutor(
        limits=cfg.limits,
        scratch_dir=cfg.home / "workers",
        idle_timeout_s=cfg.idle_timeout_s,
        isolation=isolation,
    )


class Server:
    """Owns every long-lived part of a running server and their start/stop order."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._store: Store | None = None
        self._scaler: Scaler | None = None
        self._enqueuer: Enqueuer | None = None
        self._dispatcher: Dispatcher | None = None
        self._scheduler: Scheduler | None = None
        self._tracing: Tracing | None = None
        self._logs: LogWriter | None = None
        self._usage: UsageWriter | None = None
        self._log_sweeper: LogSweeper | None = None
        self._sources: SourceService | None = None
        self._rollouts: RolloutService | None = None
        self.services: ApiServices | None = None
        # Outlives start/stop: the API refuses guessers before the services are up.
        self.failed_auth = FailedAuthGuard(config.auth_failure_limit, config.auth_failure_window_s)

    async def start(self) -> ApiServices:
        cfg = self.config
        cfg.home.mkdir(parents=True, exist_ok=True)
        key = await asyncio.to_thread(load_key, cfg.home, cfg.secret_key)
        isolation = await start_isolation(cfg.sandbox, cfg.home)
        self._store = store = await open_store(cfg.store_url)
        secrets = SecretService(store.secrets, key, changes=store.changes)
        await secrets.start()
        executor = _executor(cfg, isolation)
        self._scaler = scaler = Scaler(
            executor, max_concurrency=cfg.limits.max_concurrency, wait_s=cfg.queue_wait_s
        )
        try:
            await scaler.start()
        except OSError as exc:  # Ray could not be started or reached
            raise ConfigurationError(str(exc)) from None
        self._logs = logs = LogWriter(store, max_pending_bytes=cfg.log_buffer_bytes)
        await logs.start()
        metrics = InvocationMetrics()
        prices = PriceBook(cfg.price_plans)
        usage = None
        if cfg.metering:
            self._usage = usage = UsageWriter(store.usage, listeners=[metrics])
            await usage.start()
        self._log_sweeper = LogSweeper(
            store.logs,
            RetentionPolicy(
                max_age_s=cfg.log_retention_s,
                max_bytes_per_function=cfg.log_retention_bytes,
                interval_s=cfg.log_sweep_interval_s,
            ),
        )
        await self._log_sweeper.start()
        functions = FunctionService(
            store,
            CodeStore(cfg.home, cfg.limits),
            scaler,
            cfg.limits,
            region=cfg.region,
            account_id=cfg.account_id,
            prices=prices,
            secrets=secrets,
        )
        secrets.listen(functions.refresh_secrets)
        versions = VersionService(
            store.versions, functions, scaler, cfg.limits, changes=store.changes
        )
        self._rollouts = rollouts = RolloutService(
            store.rollouts, versions, store.usage, usage, poll_s=cfg.rollout_poll_s
        )
        self._enqueuer = enqueuer = Enqueuer(store.events)
        await enqueuer.start()
        self._tracing = tracing = Tracing(cfg.tracing)
        invocations = InvocationService(
            functions,
            scaler,
            logs,
            cfg.limits,
            enqueuer,
            usage=usage,
            tracing=tracing,
            resolve=versions.resolve,
            log_invocations=cfg.invocation_logs,
        )
        self._dispatcher = dispatcher = Dispatcher(
            store.events,
            enqueuer,
            resolve=versions.resolve,
            run=invocations.run,
            settings=DispatchSettings(
                retry_base_s=cfg.retry_base_s,
                lease_s=cfg.event_lease_s,
                max_in_flight=cfg.limits.max_concurrency,
            ),
            # One server per SQLite file: what the last one was running died with it.
            release_on_start=store.is_sqlite,
        )
        self._scheduler = scheduler = Scheduler(
            store.schedules, enqueuer, resolve=functions.resolve, poll_s=cfg.schedule_poll_s
        )
        self._sources = sources = SourceService(
            store.sources,
            resolve=functions.resolve,
            run=invocations.run,
            dead_letter=DeadLetter(write=store.sources.dead_letter, enqueue=enqueuer.submit),
            settings=PollSettings(
                backoff_s=cfg.source_backoff_s,
                lease_s=cfg.event_lease_s,
                max_payload_bytes=cfg.limits.sync_payload_bytes,
            ),
            region=cfg.region,
            account_id=cfg.account_id,
        )
        tokens = TokenService(
            store.tokens,
            self.failed_auth,
            enabled=cfg.token is not None,
            cache_s=cfg.token_cache_s,
            changes=store.changes,
        )
        urls = FunctionUrlService(
            store.urls,
            functions,
            invocations,
            cfg.limits,
            token=cfg.token,
            account_id=cfg.account_id,
            tokens=tokens,
            versions=versions,
            changes=store.changes,
        )
        self.services = ApiServices(
            functions=functions,
            invocations=invocations,
            events=EventService(store.events, dispatcher),
            logs=LogQueryService(store, logs),
            scaler=scaler,
            limits=cfg.limits,
            upload_dir=cfg.home / "uploads",
            urls=urls,
            schedules=ScheduleService(
                store.schedules, functions, scheduler, cfg.limits, versions=versions
            ),
            usage=None if usage is None else UsageService(store.usage, usage, prices),
            metrics=MetricsService(metrics, scaler, store.events, usage),
            isolation=isolation,
            sources=sources,
            tokens=tokens,
            secrets=secrets,
            versions=versions,
            rollouts=rollouts,
            activity=None if usage is None else ActivityService(store.activity, usage),
        )
        # Listening first: a deploy through another server during start-up is not missed.
        await store.changes.start(
            ChangeApplier(functions, versions, urls, tokens, secrets, scheduler)
        )
        await functions.start()
        await versions.start()
        await rollouts.start()
        if cfg.deploy_dir is not None:
            await deploy_directory(functions, cfg.deploy_dir, cfg.home / "uploads")
        await dispatcher.start()
        await scheduler.start()
        await sources.start()
        return self.services

    async def stop(self) -> None:
        """Stop workers, write pending logs, close the store. Safe to call twice."""
        self.services = None
        if self._store is not None:  # first: applying a change needs everything below
            await self._store.changes.close()
        if self._rollouts is not None:
            await self._rollouts.close()
            self._rollouts = None
        if self._scheduler is not None:
            await self._scheduler.close()
            self._scheduler = None
        if self._sources is not None:
            # First: its pollers invoke functions and enqueue failure records.
            await self._sources.close()
            self._sources = None
        if self._dispatcher is not None:
            await self._dispatcher.close()
            self._dispatcher = None
        if self._enqueuer is not None:
            await self._enqueuer.close()
            self._enqueuer = None
        if self._scaler is not None:
            await self._scaler.close()
            self._scaler = None
        if self._log_sweeper is not None:
            await self._log_sweeper.close()
            self._log_sweeper = None
        if self._logs is not None:
            await self._logs.close()
            self._logs = None
        if self._usage is not None:
            await self._usage.close()
            self._usage = None
        if self._tracing is not None:
            self._tracing.close()  # exports the spans still batched
            self._tracing = None
        if self._store is not None:
            await self._store.close()
            self._store = None


async def deploy_directory(functions: FunctionService, root: Path, scratch: Path) -> None:
    """Deploy each sub-directory of ``root`` holding a handler.py as a function named
    after it (an app's folder, with a ``pyfaas.toml``, has none at its root: `pyfaas deploy
    --app` deploys it; nor has examples/notebooks).

    A function that fails to deploy is reported and skipped: the server still starts.
    """
    for path in await asyncio.to_thread(_subdirectories, root, scratch):
        with tempfile.NamedTemporaryFile(dir=scratch, suffix=".zip") as tmp:
            await asyncio.to_thread(_zip_to, path, Path(tmp.name))
            try:
                outcome = await functions.deploy(FunctionConfig(name=path.name), Path(tmp.name))
            except PyfaasError as exc:
                log.error("could not deploy %s: %s (%s)", path, exc.message, exc.code)
                continue
        state = "created" if outcome.created else ("updated" if outcome.changed else "unchanged")
        log.info("deployed %s from %s (%s)", path.name, path, state)


def _subdirectories(root: Path, scratch: Path) -> list[Path]:
    scratch.mkdir(parents=True, exist_ok=True)
    return sorted(
        p
        for p in root.iterdir()
        # A directory without handler.py (examples/notebooks) holds no function.
        if p.is_dir() and not p.name.startswith(".") and (p / "handler.py").is_file()
    )


def _zip_to(directory: Path, target: Path) -> None:
    with target.open("wb") as out:
        zip_directory(directory, out)


def _check_port_free(host: str, port: int) -> None:
    """Fail before any start-up work if the address is taken (uvicorn would say so after)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop whatever uses it "
                "or pick another port with --port / PYFAAS_PORT"
            ) from None


def build_app(config: ServerConfig) -> Starlette:
    """The ASGI app of a server; its lifespan starts and stops everything."""
    server = Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            app.state.services = await server.start()
            yield
        finally:
            app.state.services = None
            await server.stop()

    return create_app(
        token=config.token,
        lifespan=lifespan,
        guard=server.failed_auth,
        max_header_bytes=config.max_header_bytes,
        lambda_auth=lambda_verifier(config),
    )


def lambda_verifier(config: ServerConfig) -> SigV4Verifier:
    """The Lambda API's signature check: the configured access keys, plus ``pyfaas`` with the
    token as its secret. With neither, on loopback, any request from loopback is accepted."""
    keys = dict(config.access_keys)
    if config.token:
        keys.setdefault("pyfaas", config.token)
    dev_mode = not keys and config.is_loopback
    if dev_mode:
        log.warning(
            "Lambda API in dev mode: requests from loopback are accepted with any access key "
            "and no signature check; set PYFAAS_ACCESS_KEYS=ID:SECRET (or a token) to check them"
        )
    return SigV4Verifier(keys, dev_mode=dev_mode)


def run(config: ServerConfig) -> None:
    """Serve until interrupted (blocking). Raises ConfigurationError for unusable settings."""
    config.check()
    _check_port_free(config.host, config.port)
    # A bad PYFAAS_SECRET_KEY or an unsafe key file is a one-line error, before uvicorn.
    config.home.mkdir(parents=True, exist_ok=True)
    load_key(config.home, config.secret_key)
    if config.executor == "ray" and config.ray_address:
        from pyfaas.executor.ray_backend import check_reachable

        try:
            check_reachable(config.ray_address)  # ray.init would retry it for minutes
        except OSError as exc:
            raise ConfigurationError(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(config)
    _Uvicorn(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=10,
    ).run()


class _Uvicorn(uvicorn.Server):
    """uvicorn's server that, asked to exit, also ends the streams following logs: they have
    no end of their own and would hold the graceful shutdown for its whole timeout."""

    def __init__(self, app: Starlette, **options: Any) -> None:
        super().__init__(uvicorn.Config(app, **options))
        self._app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What start-up made (modules, the app, the services: ~160,000 objects) lives as
        # long as the process. Left to the cyclic garbage collector, every full collection
        # walks all of it (~0.1 s each, several a minute under load); the batches of usage
        # records and logs, which live one write interval and so reach the old generation,
        # made those collections more frequent. Frozen, a full collection walks only what
        # was made since.
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        services: ApiServices | None = getattr(self._app.state, "services", None)
        if services is not None:
            # Not from the handler itself: it may interrupt the loop in the middle of a step.
            asyncio.get_running_loop().call_soon_threadsafe(services.logs.end_follows)
