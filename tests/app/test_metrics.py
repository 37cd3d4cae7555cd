"""/metrics of each of our processes (core/metrics.py), scraped over real HTTP and read with
prometheus_client's own parser: the bot's (queues and their oldest ages, the scheduler's lag,
what it counted), the action server's (calls and errors per action), the web process's
(requests by route). Each asks for the shared secret; no label carries a person."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from actions.__main__ import build_app, guard
from actions.deps import Deps
from bot.app import Services, serve_metrics
from bot.conversation import PassResult
from bot.rasa_client import RasaClient
from core.config import Settings
from core.db import session_scope
from core.messaging import inbox, outbox
from core.messaging import updates as stored
from core.metrics import Metrics
from core.models import utcnow
from tests.app.stack import TEST_SECRET, free_port
from tests.app.web_server import serving, serving_app

RESIDENT = 818_181_818
WORDS = "张三说5号楼漏水"


def settings_for(url: str, **extra: Any) -> Settings:
    return Settings(_env_file=None, database_url=url, gridbot_secret=TEST_SECRET,  # type: ignore[call-arg]
                    bot_metrics_port=free_port(), **extra)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value, through prometheus_client's parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str, secret: str | None = TEST_SECRET, how: str = "bearer") -> httpx.Response:
    headers = {} if secret is None else \
        {"Authorization": f"Bearer {secret}"} if how == "bearer" else {"X-Gridbot-Secret": secret}
    return httpx.get(url, headers=headers, timeout=10)


@pytest.fixture
def bot_metrics(factory: sessionmaker[Session]) -> Iterator[tuple[str, Metrics, Settings]]:
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    settings = settings_for(url)
    metrics = Metrics()
    stop = serve_metrics(settings, factory, metrics)
    try:
        yield f"http://127.0.0.1:{settings.bot_metrics_port}/metrics", metrics, settings
    finally:
        stop()


def test_the_bot_exposes_queues_lag_and_its_counts(factory: sessionmaker[Session],
                                                   bot_metrics: tuple[str, Metrics, Settings]) -> None:
    url, metrics, settings = bot_metrics
    with session_scope(factory) as s:
        row = inbox.accept(s, sender_id=RESIDENT, chat_id=RESIDENT, text=WORDS)
        row.received_at = utcnow() - timedelta(minutes=3)
        outbox.enqueue(s, dedupe_key="m:1", kind="reply", chat_id=RESIDENT, payload={"text": WORDS})
        stored.store(s, [{"update_id": 5, "message": {"text": WORDS}}], now=utcnow() - timedelta(seconds=50))
    # what the bot counts as it works (Services._count after a pass, as bot/app.py does)
    svc = Services(factory, RasaClient("http://127.0.0.1:9", TEST_SECRET), settings, metrics)
    svc._count(PassResult(answered=1, received=[utcnow() - timedelta(seconds=0.25)], rasa_down=True,
                          failed_actions=["action_submit_report"]))
    asyncio.run(svc.rasa.aclose())
    metrics.messages_in.labels("webhook").inc(2)
    metrics.messages_out.labels("reply").inc()
    metrics.delivery_failures.labels("forbidden").inc()

    reply = scrape(url)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    got = samples(reply.text)
    assert got[("gridbot_queue_depth", (("queue", "inbox_pending"),))] == 1
    assert got[("gridbot_queue_oldest_seconds", (("queue", "inbox_pending"),))] == pytest.approx(180, abs=5)
    assert got[("gridbot_queue_depth", (("queue", "outbox_pending"),))] == 1
    assert got[("gridbot_queue_depth", (("queue", "updates_pending"),))] == 1
    assert got[("gridbot_queue_oldest_seconds", (("queue", "updates_pending"),))] == pytest.approx(50, abs=5)
    assert got[("gridbot_scheduler_lag_seconds", ())] == 0
    assert got[("gridbot_health_up", ())] == 1
    assert got[("gridbot_messages_in_total", (("via", "webhook"),))] == 2
    assert got[("gridbot_messages_out_total", (("kind", "reply"),))] == 1
    assert got[("gridbot_delivery_failures_total", (("kind", "forbidden"),))] == 1
    assert got[("gridbot_rasa_errors_total", (("kind", "unavailable"),))] == 1
    assert got[("gridbot_action_errors_total", (("action", "action_submit_report"),))] == 1
    assert got[("gridbot_reply_seconds_count", ())] == 1
    assert got[("gridbot_reply_seconds_bucket", (("le", "0.2"),))] == 0
    assert got[("gridbot_reply_seconds_bucket", (("le", "0.3"),))] == 1
    if factory.kw["bind"].dialect.name == "postgresql":  # nobody leads: said, with an empty holder
        assert got[("gridbot_scheduler_leader", (("holder", ""),))] == 0
    assert WORDS not in reply.text and str(RESIDENT) not in reply.text  # no person in a label


@pytest.mark.parametrize("secret", [None, "w" * 43])
def test_the_bots_metrics_need_the_secret(factory: sessionmaker[Session], bot_metrics: tuple[str, Metrics, Settings],
                                          secret: str | None) -> None:
    url = bot_metrics[0]
    for how in ("bearer", "header"):
        refused = scrape(url, secret, how)
        assert refused.status_code == 401 and "gridbot_" not in refused.text
    assert scrape(url, how="header").status_code == 200
    assert httpx.get(url.replace("/metrics", "/other"), timeout=10).status_code == 404


def test_the_web_process_counts_requests_by_route(factory: sessionmaker[Session]) -> None:
    settings = settings_for(factory.kw["bind"].url.render_as_string(hide_password=False))
    with serving(settings, factory) as base:
        assert httpx.get(f"{base}/health").status_code == 200
        assert httpx.get(f"{base}/no/such/page/{RESIDENT}").status_code == 404
        assert scrape(f"{base}/metrics", None).status_code == 401
        reply = scrape(f"{base}/metrics", how="header")
    assert reply.status_code == 200
    got = samples(reply.text)
    assert got[("gridbot_http_requests_total", (("route", "_health"), ("status", "200")))] == 1
    assert got[("gridbot_http_requests_total", (("route", "unmatched"), ("status", "404")))] == 1
    assert str(RESIDENT) not in reply.text  # the path of an unmatched request is not a label


def test_the_action_server_counts_calls_and_errors_per_action(factory: sessionmaker[Session]) -> None:
    settings = settings_for(factory.kw["bind"].url.render_as_string(hide_password=False))
    app = build_app(Deps.build(settings, factory), name=f"gridbot_actions_{free_port()}")
    guard(app, TEST_SECRET)
    call = {"next_action": "action_nobody_registered", "sender_id": str(RESIDENT), "version": "3.6.2",
            "domain": {}, "tracker": {"sender_id": str(RESIDENT), "slots": {}, "latest_message": {},
                                      "events": [], "paused": False, "followup_action": None,
                                      "active_loop": {}, "latest_action_name": None}}
    with serving_app(app) as base:
        assert httpx.post(f"{base}/webhook", json=call, headers={"X-Gridbot-Secret": TEST_SECRET}).status_code == 404
        assert scrape(f"{base}/metrics", None).status_code == 401
        assert scrape(f"{base}/metrics", "w" * 43).status_code == 401
        reply = scrape(f"{base}/metrics")  # Prometheus's Authorization: Bearer
        assert scrape(f"{base}/metrics", how="header").status_code == 200
    assert reply.status_code == 200
    got = samples(reply.text)
    assert got[("gridbot_action_calls_total", (("action", "unknown"),))] == 1
    assert got[("gridbot_action_errors_total", (("action", "unknown"),))] == 1
    assert got[("gridbot_action_seconds_count", (("action", "unknown"),))] == 1
    assert "action_nobody_registered" not in reply.text and str(RESIDENT) not in reply.text
