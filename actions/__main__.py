"""Run the Rasa action server bound to gridbot's BIND_HOST (rasa_sdk's own CLI binds 0.0.0.0),
every request checked before rasa_sdk sees it (`guard`):

- the shared secret (`core/secret.py`) in the X-Gridbot-Secret header, compared in constant
  time; Rasa sends it from endpoints.yml. Without it: 401, and nothing runs (/health too).
- a body of at most MAX_BODY_BYTES (Sanic answers 413 before any handler runs);
- `Content-Encoding: deflate` (what Rasa sends with COMPRESS_ACTION_SERVER_REQUEST=true) is
  inflated here to at most MAX_BODY_BYTES, instead of by rasa_sdk without a limit (a few
  kilobytes of zeros inflate to gigabytes): more is 413, a broken stream 400, any other
  encoding 415.
"""

from __future__ import annotations

import logging
import sys
import time
import zlib
from collections.abc import Callable

from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sanic import Sanic, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.deps import Deps
from actions.duties import ActionMyDuties, ActionRsvp
from actions.emergency import ActionEmergencyOver, ActionFileEmergency
from actions.followup import (
    ActionAddToTicket,
    ActionCommunityContact,
    ActionFixTicketCategory,
    ActionRequestCallback,
    ActionWithdrawTicket,
)
from actions.rating import ActionRate
from actions.report_form import (
    ActionAddPhoto,
    ActionAskCategory,
    ActionAskDescription,
    ActionAskPlace,
    ActionCancelReport,
    ActionJoinTicket,
    ActionRemindPending,
    ActionReply,
    ActionReportSummary,
    ActionStartReport,
    ActionSubmitReport,
    ActionTriage,
    ValidateReportForm,
)
from actions.status import ActionCheckStatus, ActionHelp
from core import secret as shared
from core.config import get_settings
from core.metrics import CONTENT_TYPE, Metrics, authorised

log = logging.getLogger("gridbot.actions")

# An action call carries the conversation's whole tracker: a few kilobytes a turn.
MAX_BODY_BYTES = 8 * 1024 * 1024


def inflate(body: bytes, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """A zlib (HTTP "deflate") body inflated; None if it would be more than `limit` bytes.
    zlib.error when it is not a complete zlib stream."""
    inflater = zlib.decompressobj()
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit or inflater.unconsumed_tail:
        return None
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return data


def guard(app: Sanic, secret: str, max_body: int = MAX_BODY_BYTES) -> None:
    """Put the secret check and the body limits in front of every route of `app`."""
    app.config.REQUEST_MAX_SIZE = max_body

    @app.exception(PayloadTooLarge)  # before rasa_sdk's catch-all, which would answer 500
    async def too_large(request: Request, exception: PayloadTooLarge) -> HTTPResponse:
        log.warning("refused %s %s from %s: body over %d bytes", request.method, request.path,
                    request.ip, max_body)
        return response.json({"error": f"the body is over {max_body} bytes"}, status=413)

    @app.middleware("request")
    async def authenticate(request: Request) -> HTTPResponse | None:
        # /metrics also takes the secret as Prometheus sends it (Authorization: Bearer).
        allowed = authorised(request.headers, secret) if request.path == "/metrics" \
            else shared.matches(request.headers.get(shared.SECRET_HEADER), secret)
        if not allowed:
            log.warning("refused %s %s from %s: no or wrong %s", request.method, request.path,
                        request.ip, shared.SECRET_HEADER)
            return response.json({"error": "unauthorized"}, status=401)
        encoding = request.headers.get("Content-Encoding")
        if encoding is None:
            return None
        if encoding.strip().lower() != "deflate":
            return response.json({"error": f"unsupported Content-Encoding {encoding[:40]!r}"}, status=415)
        try:
            body = inflate(request.body or b"", max_body)
        except zlib.error:
            return response.json({"error": "the deflate body is not a valid zlib stream"}, status=400)
        if body is None:
            log.warning("refused %s %s from %s: the deflate body inflates to more than %d bytes",
                        request.method, request.path, request.ip, max_body)
            return response.json({"error": f"the body inflates to more than {max_body} bytes"}, status=413)
        request.body = body  # rasa_sdk then reads it as plain JSON
        del request.headers["Content-Encoding"]
        return None


def action_classes() -> list[Callable[[Deps], Action]]:
    """Every action the server runs, named here rather than found by scanning for subclasses."""
    return [ActionStartReport, ValidateReportForm, ActionAskCategory, ActionAskPlace, ActionAskDescription,
            ActionReportSummary, ActionAddPhoto, ActionSubmitReport, ActionCancelReport, ActionJoinTicket,
            ActionTriage, ActionFileEmergency, ActionCheckStatus, ActionHelp, ActionMyDuties, ActionRsvp,
            ActionReply, ActionRemindPending, ActionEmergencyOver, ActionRate,
            ActionWithdrawTicket, ActionFixTicketCategory, ActionAddToTicket, ActionRequestCallback,
            ActionCommunityContact]


def build_app(deps: Deps, metrics: Metrics | None = None, name: str = "gridbot_actions") -> Sanic:
    """rasa_sdk's /health, /actions and /webhook, with every action given `deps` when it is made,
    and /metrics: calls, errors and time per action (core/metrics.py)."""
    app = Sanic(name, configure_logging=False)
    executor = ActionExecutor()
    for cls in action_classes():
        executor.register_action(cls(deps))
    counted = metrics or Metrics()

    @app.get("/metrics")
    async def exposition(_: Request) -> HTTPResponse:
        return response.raw(counted.exposition(), content_type=CONTENT_TYPE)

    @app.get("/health")
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @app.get("/actions")
    async def names(_: Request) -> HTTPResponse:
        return response.json([{"name": name} for name in executor.actions])

    @app.post("/webhook")
    async def webhook(request: Request) -> HTTPResponse:
        action_call = request.json  # `guard` has inflated a deflate body already
        if action_call is None:
            return response.json({"error": "Invalid body request"}, status=400)
        called = action_call.get("next_action") if isinstance(action_call, dict) else None
        action = called if isinstance(called, str) and called in executor.actions else "unknown"
        counted.action_calls.labels(action).inc()
        started = time.perf_counter()
        try:
            result = await executor.run(action_call)
        except ActionExecutionRejection as exc:
            return response.json({"error": exc.message, "action_name": exc.action_name}, status=400)
        except ActionNotFoundException as exc:
            log.error("%s", exc.message)
            counted.action_errors.labels(action).inc()
            return response.json({"error": exc.message, "action_name": exc.action_name}, status=404)
        except Exception:
            counted.action_errors.labels(action).inc()
            raise
        finally:
            counted.action_seconds.labels(action).observe(time.perf_counter() - started)
        return response.json(result)

    return app


def main() -> int:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        secret = settings.shared_secret()
    except shared.SecretError as exc:
        print(f"actions: {exc}", file=sys.stderr)
        return 2
    app = build_app(Deps.build(settings))
    guard(app, secret)
    app.run(host=settings.bind_host, port=settings.action_server_port, workers=1,
            access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
