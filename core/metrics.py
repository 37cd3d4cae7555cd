"""What each process counts, for `/metrics` in Prometheus text format (prometheus_client).

Every process builds one `Metrics` at start-up, in a registry of its own (not the library's
global one), and passes it to what counts: the bot (messages in and out, reply time, delivery
failures, Rasa and action errors, refused webhook deliveries), the action server (calls and
errors per action), the web process (requests per route). The bot also registers a
`HealthCollector`: at each scrape it reads the figures `gridbot health` prints
(core/health.py: queue depths and oldest ages, the scheduler's leader and lag, Redis).

Labels are bounded and carry no person: a queue, an outbox kind, a failure kind, an action
name, a route name. `/metrics` asks for the shared secret like every other door
(`authorised`: `Authorization: Bearer <GRIDBOT_SECRET>`, Prometheus's `authorization`
setting, or the `X-Gridbot-Secret` header).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest, make_wsgi_app
from prometheus_client.registry import Collector

from core import secret as shared
from core.health import Health

log = logging.getLogger("gridbot.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds from a message kept in the inbox to its replies confirmed sent.
REPLY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The counters of one process, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("gridbot_messages_in", "Telegram updates received and stored, by how they came",
                                   ["via"], registry=r)
        self.messages_out = Counter("gridbot_messages_out", "Outbox messages Telegram confirmed, by outbox kind",
                                    ["kind"], registry=r)
        self.reply_seconds = Histogram("gridbot_reply_seconds", "From a resident's message kept in the inbox "
                                       "to its replies sent", buckets=REPLY_BUCKETS, registry=r)
        self.delivery_failures = Counter("gridbot_delivery_failures", "Outbox requests that did not go "
                                         "through, by what Telegram or the network did", ["kind"], registry=r)
        self.rasa_errors = Counter("gridbot_rasa_errors", "Passes that found Rasa unreachable or refusing",
                                   ["kind"], registry=r)
        self.action_errors = Counter("gridbot_action_errors", "Custom actions that failed, by action",
                                     ["action"], registry=r)
        self.action_calls = Counter("gridbot_action_calls", "Custom action calls served, by action",
                                    ["action"], registry=r)
        self.action_seconds = Histogram("gridbot_action_seconds", "Time to run a custom action",
                                        ["action"], registry=r)
        self.webhook_refused = Counter("gridbot_webhook_refused", "Webhook deliveries refused, by reason",
                                       ["reason"], registry=r)
        self.http_requests = Counter("gridbot_http_requests", "Requests served, by route and status",
                                     ["route", "status"], registry=r)
        self.scheduler_leading = Gauge("gridbot_scheduler_leading",
                                       "1 while this process leads the scheduled work", registry=r)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (collectors may read the database: call it
        from a worker thread)."""
        return generate_latest(self.registry)


def authorised(headers: Mapping[str, str], secret: str) -> bool:
    """Does a /metrics request carry the shared secret?"""
    bearer = headers.get("authorization") or headers.get("Authorization") or ""
    if bearer[:7].lower() == "bearer " and shared.matches(bearer[7:].strip(), secret):
        return True
    return shared.matches(headers.get(shared.SECRET_HEADER) or headers.get(shared.SECRET_HEADER.lower()), secret)


class HealthCollector(Collector):
    """The figures of `gridbot health`, read at scrape time (at most once per `ttl` seconds, so
    several scrapers do not multiply the queries)."""

    def __init__(self, read: Callable[[], Health], ttl: float = 2.0) -> None:
        self.read = read
        self.ttl = ttl
        self._cached: tuple[float, Health] | None = None
        self._lock = threading.Lock()

    def _health(self) -> Health:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.ttl:
                self._cached = (time.monotonic(), self.read())
            return self._cached[1]

    def describe(self) -> Iterable[Metric]:
        return []  # read only at scrape time, never when registered

    def collect(self) -> Iterable[Metric]:
        try:
            health = self._health()
        except Exception:  # noqa: BLE001 - the database is down: say so, not a 500
            up = GaugeMetricFamily("gridbot_health_up", "1 when the database answered the health queries")
            up.add_metric([], 0)
            return [up]
        up = GaugeMetricFamily("gridbot_health_up", "1 when the database answered the health queries")
        up.add_metric([], 1)
        depth = GaugeMetricFamily("gridbot_queue_depth", "Rows in each queue (core/health.py)", labels=["queue"])
        oldest = GaugeMetricFamily("gridbot_queue_oldest_seconds", "Age of the oldest row of each queue "
                                   "(0 when empty)", labels=["queue"])
        stuck = GaugeMetricFamily("gridbot_queue_stuck", "Rows that should have moved on by now",
                                  labels=["queue"])
        for queue in health.queues:
            depth.add_metric([queue.name], queue.count)
            oldest.add_metric([queue.name], queue.oldest_seconds or 0.0)
            stuck.add_metric([queue.name], queue.stuck)
        lag = GaugeMetricFamily("gridbot_scheduler_lag_seconds",
                                "How long the oldest ticket time-limit step has been due and not done")
        lag.add_metric([], health.scheduler_lag_seconds)
        families = [up, depth, oldest, stuck, lag]
        if health.leader.known:
            leader = GaugeMetricFamily("gridbot_scheduler_leader", "The process leading the scheduled "
                                       "work (host:pid); none: holder=\"\" with value 0", labels=["holder"])
            leader.add_metric([health.leader.holder or ""], 0 if health.leader.holder is None else 1)
            families.append(leader)
        if health.redis is not None:
            redis = GaugeMetricFamily("gridbot_redis_up", "1 when Redis (REDIS_URL) answers PING")
            redis.add_metric([], 1 if health.redis == "ok" else 0)
            families.append(redis)
        status = GaugeMetricFamily("gridbot_health_status", "gridbot health's exit status: 0 ok, 1 failed, "
                                   "3 stuck")
        status.add_metric([], health.exit_status)
        families.append(status)
        return families


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the library's name
        pass  # a scrape every few seconds is not worth a log line


def serve_in_thread(metrics: Metrics, host: str, port: int, secret: str) -> Callable[[], None]:
    """Serve GET /metrics on host:port from a daemon thread (for a process with no HTTP server
    of its own: the bot); the function that stops it. OSError when the port is taken."""
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        headers = {"Authorization": environ.get("HTTP_AUTHORIZATION", ""),
                   shared.SECRET_HEADER: environ.get("HTTP_X_GRIDBOT_SECRET", "")}
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not authorised(headers, secret):
            log.warning("refused %s /metrics from %s: no or wrong secret", environ.get("REQUEST_METHOD"),
                        environ.get("REMOTE_ADDR"))
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"unauthorized\n"]
        return exposition(environ, start_response)

    server = make_server(host, port, app, _Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="gridbot-metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
