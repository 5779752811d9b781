"""`emailsettings-sidecar`: wire the parts together and run until SIGTERM.

    follower (watch EmailSettings) --gate--> deliverer <--due-- spool <--202-- HTTP intake
                                                                      <--250-- SMTP intake

The same Sidecar object runs in tests (in-process) and in the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from emailsettings.kube import KubeClient, KubeConfig
from emailsettings.sidecar.config import ConfigError, SidecarConfig, load
from emailsettings.sidecar.credentials import Credentials
from emailsettings.sidecar.delivery import Deliverer, DeliverySettings
from emailsettings.sidecar.follower import SettingsFollower
from emailsettings.sidecar.intake import IntakeRules
from emailsettings.sidecar.intake_http import AppState, make_app
from emailsettings.sidecar.metrics import Metrics
from emailsettings.sidecar.settings_gate import Gate
from emailsettings.sidecar.smtp_intake import SMTPIntake, SMTPIntakeSettings
from emailsettings.sidecar.spool import Limits, Spool, SpoolUnavailableError
from emailsettings.sidecar.templates import Renderer

log = logging.getLogger("emailsettings.sidecar")

SPOOL_REOPEN_SECONDS = 5.0


class Sidecar:
    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.spool = Spool(
            config.spool_dir,
            Limits(
                max_pending=config.spool_max_pending,
                max_pending_bytes=config.spool_max_bytes,
                max_rows=config.spool_max_rows,
            ),
        )
        self.renderer = Renderer(config.templates_dir)
        self.kube = KubeClient(
            KubeConfig.load(config.kubeconfig), user_agent="emailsettings-sidecar", limit=4
        )
        self.namespace = config.resolved_namespace() or self.kube.config.namespace
        self.follower = SettingsFollower(
            self.kube, self.namespace, config.name, on_change=self._settings_changed
        )
        self.credentials = Credentials(
            source=config.secret_source,
            secret_dir=config.secret_dir,
            password_file=config.password_file,
            ca_dir=config.ca_dir,
            namespace=self.namespace,
            client=self.kube,
        )
        self.deliverer = Deliverer(
            spool=self.spool,
            gate=lambda: self.follower.gate,
            credentials=self.credentials,
            renderer=self.renderer,
            metrics=self.metrics,
            settings=DeliverySettings(
                batch_size=config.batch_size,
                rate_per_second=config.rate_per_second,
                rate_burst=config.rate_burst,
                retry_base=config.retry_base,
                retry_max=config.retry_max,
                max_age=config.max_age,
                retention=config.retention,
                message_id_domain=config.message_id_domain,
                rewrite_from=config.smtp_rewrite_from == "always",
            ),
        )
        self.state = AppState(
            spool=self.spool,
            deliverer=self.deliverer,
            renderer=self.renderer,
            metrics=self.metrics,
            rules=IntakeRules(storm_window=config.storm_window),
            max_request_bytes=config.max_request_bytes,
            settings_name=config.name,
            namespace=self.namespace,
            api_error=lambda: self.follower.last_error,
        )
        self.smtp_intake: SMTPIntake | None = None
        if config.smtp_address is not None:
            self.smtp_intake = SMTPIntake(
                spool=self.spool,
                metrics=self.metrics,
                settings=SMTPIntakeSettings(
                    domain=config.smtp_domain,
                    allow_relay=config.smtp_allow_relay,
                    category_header=config.smtp_category_header,
                    max_message_bytes=config.smtp_max_message_bytes,
                    max_connections=config.smtp_max_connections,
                    bare_newline=config.smtp_bare_newline,
                    storm_window=config.storm_window,
                ),
                on_accepted=self.deliverer.wake,
                accepting=lambda: self.state.accepting,
            )
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._delivery_task: asyncio.Task[None] | None = None
        self.addresses: list[tuple[str, int]] = []
        self.metrics.set_settings(usable=False, reason=str(self.follower.gate.reason))

    def _settings_changed(self, gate: Gate) -> None:
        self.metrics.set_settings(usable=gate.may_send, reason=str(gate.reason))
        self.deliverer.wake()

    @property
    def url(self) -> str:
        host, port = self.addresses[0]
        return f"http://{host}:{port}"

    @property
    def smtp_address(self) -> tuple[str, int] | None:
        """Where the SMTP intake listens (its first socket), or None when it is off."""
        if self.smtp_intake is None or not self.smtp_intake.addresses:
            return None
        return self.smtp_intake.addresses[0]

    @property
    def probe_url(self) -> str | None:
        if len(self.addresses) < 2:
            return None
        host, port = self.addresses[1]
        return f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"  # noqa: S104

    async def start(self) -> None:
        await self.kube.__aenter__()
        self._open_spool()
        await self._serve(make_app(self.state), *self.config.listen)
        probe = self.config.probe_address
        if probe is not None:
            await self._serve(make_app(self.state, probes_only=True), *probe)
        smtp_address = self.config.smtp_address
        if self.smtp_intake is not None and smtp_address is not None:
            await self.smtp_intake.start(*smtp_address)
            log.info(
                "SMTP intake listening on %s (aliases %s)",
                ", ".join(f"{h}:{p}" for h, p in self.smtp_intake.addresses),
                self.smtp_intake.settings.aliases(),
            )
        self._tasks = [
            asyncio.create_task(self.follower.run(), name="follower"),
            asyncio.create_task(self.deliverer.maintain(), name="maintenance"),
        ]
        if not self.spool.running:
            self._tasks.append(asyncio.create_task(self._reopen_spool(), name="spool-reopen"))
        self._delivery_task = asyncio.create_task(self.deliverer.run(), name="delivery")
        log.info(
            "sidecar listening on %s; following EmailSettings %s/%s",
            self.url,
            self.namespace,
            self.config.name,
        )

    def _open_spool(self) -> None:
        try:
            self.spool.open()
        except SpoolUnavailableError as error:
            log.error("cannot open the spool in %s: %s", self.config.spool_dir, error)  # noqa: TRY400

    async def _reopen_spool(self) -> None:
        while not self.spool.running:
            await asyncio.sleep(SPOOL_REOPEN_SECONDS)  # periodic retry
            self._open_spool()
        log.info("spool open")
        self.deliverer.wake()

    async def _serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        bound = runner.addresses[-1]
        self.addresses.append((str(bound[0]), int(bound[1])))

    async def stop(self) -> None:
        self.state.accepting = False
        if self.smtp_intake is not None:
            # Messages in DATA get their answer (after their commit) before the spool closes.
            await self.smtp_intake.close(self.config.shutdown_grace)
        self.deliverer.stop()
        if self._delivery_task is not None:
            try:
                await asyncio.wait_for(self._delivery_task, self.config.shutdown_grace)
            except TimeoutError:
                log.warning("delivery did not finish within the grace period")
            except Exception:
                log.exception("delivery loop failed")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        await self.kube.close()
        self.spool.close()
        log.info("sidecar stopped")


async def run(config: SidecarConfig) -> int:
    sidecar = Sidecar(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await sidecar.start()
    try:
        await stop.wait()
    finally:
        await sidecar.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load(argv)
    except ConfigError as error:
        sys.stderr.write(f"emailsettings-sidecar: {error}\n")
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
