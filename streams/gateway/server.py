"""Run the gateway process: topics, producer, identities, HTTP server; stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import structlog
from aiohttp import web

from streams.errors import ConfigError
from streams.gateway.answers import Answers, answers_configured
from streams.gateway.app import Gateway, build_app
from streams.gateway.identities import Identities, ensure_identity_topic
from streams.gateway.outbox import Outbox, new_producer
from streams.settings import Settings

log = structlog.get_logger(__name__)


def load_account_map(path: Path | None) -> dict[str, str]:
    """``CHURNWATCH_STRIPE_ACCOUNT_MAP``: a JSON object of Stripe customer id -> account id."""
    if path is None:
        return {}
    try:
        mapping = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(
            "CHURNWATCH_STRIPE_ACCOUNT_MAP", f"cannot read a JSON object from {path}: {exc}"
        ) from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) and v for v in mapping.values()):
        raise ConfigError(
            "CHURNWATCH_STRIPE_ACCOUNT_MAP", "must be a JSON object of customer id -> account id"
        )
    return mapping


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM)."""
    stripe_accounts = load_account_map(settings.ingest.stripe_account_map)
    await ensure_identity_topic(settings)
    producer = new_producer(settings)
    await producer.start()
    identities = Identities(settings)
    runner: web.AppRunner | None = None
    answers: Answers | None = None
    try:
        loaded = await identities.start()
        gateway = Gateway(settings, Outbox(producer), identities.accounts, stripe_accounts=stripe_accounts)
        if answers_configured(settings):
            answers = Answers(settings, gateway)
            await answers.start()
        runner = web.AppRunner(build_app(gateway, answers.routes if answers else None), access_log=None)
        await runner.setup()
        host, _, port = settings.ingest.listen.rpartition(":")
        try:
            await web.TCPSite(runner, host, int(port)).start()
        except OSError as exc:
            raise ConfigError(
                "CHURNWATCH_INGEST_LISTEN", f"cannot listen on {settings.ingest.listen}: {exc.strerror}"
            ) from None
        log.info(
            "gateway.listening",
            url=f"http://{settings.ingest.listen}",
            segment=settings.ingest.write_key is not None,
            stripe=settings.ingest.stripe_webhook_secret is not None,
            zendesk=settings.ingest.zendesk_webhook_secret is not None,
            intercom=settings.ingest.intercom_client_secret is not None,
            slack_interactions=settings.feedback.slack_signing_secret is not None,
            alerts_answerable=len(answers.index) if answers else None,
            users_mapped=loaded,
        )
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:  # Python's own handlers back (a caller's loop may run on, e.g. in a test)
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        if runner is not None:
            await runner.cleanup()  # stops accepting, lets requests in flight finish
        if answers is not None:
            await answers.stop()
        await identities.stop()
        await producer.stop()
        log.info("gateway.stopped")


def run_gateway(settings: Settings) -> None:
    from streams.live.worker import prepare_kafka

    prepare_kafka(settings)
    asyncio.run(serve(settings))
