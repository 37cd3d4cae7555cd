"""Telegram's rate limits shared by every bot process on one PostgreSQL database.

bot/ratelimit.py's RateLimiter keeps the limits within one process (with its priorities and its
pause after a burst of 429s). With several bot replicas each would spend the whole budget, so on
PostgreSQL every request also takes a slot here, in one short transaction, on the database's
clock (the replicas' clocks never meet). Each limit is a GCRA cell (a leaky bucket kept as one
"theoretical arrival time" per key in `rate_budget`):

* overall ("all"): `rate - OVERALL_BURST` requests per `period` on average and bursts of
  OVERALL_BURST for replies; a bulk request (a broadcast) gets no burst. A burst plus the steady
  rate within any one period stays within `rate`;
* per chat ("chat:<id>"): one a `per_chat` second with a bucket of `chat_burst` (the same token
  bucket as the process's own);
* per group ("group:<id>", a negative chat id): `group_rate - GROUP_BURST` per `group_period`
  on average and bursts of GROUP_BURST, again within `group_rate` in any period.

A slot is taken for all of a request's limits at once or for none; a request that must wait is
told how long and takes nothing meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

log = logging.getLogger("gridbot.ratebudget")

OVERALL_BURST = 3
GROUP_BURST = 3
PRUNE_SECONDS = 600.0  # cells idle this long are forgotten (a full bucket needs no row)

_NOW = text("SELECT extract(epoch FROM clock_timestamp())::float8")
_ENSURE = text("INSERT INTO rate_budget (key, tat) SELECT k, 0 FROM unnest(CAST(:keys AS text[])) AS k "
               "ON CONFLICT (key) DO NOTHING")
_LOCK = text("SELECT key, tat FROM rate_budget WHERE key = ANY(CAST(:keys AS text[])) ORDER BY key FOR UPDATE")
_SET = text("UPDATE rate_budget SET tat = :tat WHERE key = :key")
_PRUNE = text("DELETE FROM rate_budget WHERE key <> 'all' AND tat < extract(epoch FROM clock_timestamp()) - :idle")


@dataclass(frozen=True)
class Cell:
    key: str
    interval: float  # seconds per request on average
    burst: int  # requests that may go at once


class SharedBudget:
    """`take(chat_id, burst, spaced)`: 0.0 when a slot was taken for a request to `chat_id`
    now, else the seconds to wait before asking again (nothing taken)."""

    def __init__(self, engine: Engine, *, rate: int, period: float, per_chat: float, chat_burst: int,
                 group_rate: int, group_period: float) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("the shared rate budget needs PostgreSQL")
        self.engine = engine
        self.overall = period / (rate - OVERALL_BURST)
        self.per_chat, self.chat_burst = per_chat, chat_burst
        self.group = group_period / (group_rate - GROUP_BURST)
        self._pruned = time.monotonic()

    def cells(self, chat_id: int | None, burst: int | None, spaced: bool) -> list[Cell]:
        cells = [Cell("all", self.overall, 1 if spaced else OVERALL_BURST)]
        if chat_id is not None:
            cells.append(Cell(f"chat:{chat_id}", self.per_chat, min(self.chat_burst, burst or self.chat_burst)))
            if chat_id < 0:
                cells.append(Cell(f"group:{chat_id}", self.group, GROUP_BURST))
        return cells

    def take(self, chat_id: int | None = None, burst: int | None = None, spaced: bool = False) -> float:
        cells = {c.key: c for c in self.cells(chat_id, burst, spaced)}
        keys = sorted(cells)
        with self.engine.begin() as conn:
            conn.execute(_ENSURE, {"keys": keys})
            tats = {row.key: float(row.tat) for row in conn.execute(_LOCK, {"keys": keys})}
            now = float(conn.execute(_NOW).scalar_one())
            # GCRA: a request may go when its cell's arrival time is at most (burst - 1) intervals ahead
            wait = max(tats[k] - (cells[k].burst - 1) * cells[k].interval - now for k in keys)
            if wait > 0:
                return wait
            for k in keys:
                conn.execute(_SET, {"key": k, "tat": max(tats[k], now) + cells[k].interval})
        if time.monotonic() - self._pruned > PRUNE_SECONDS:
            self._pruned = time.monotonic()
            self.prune()
        return 0.0

    def prune(self) -> int:
        try:
            with self.engine.begin() as conn:
                return int(conn.execute(_PRUNE, {"idle": PRUNE_SECONDS}).rowcount or 0)
        except Exception as exc:  # noqa: BLE001 - housekeeping
            log.warning("rate budget: pruning failed: %s", exc)
            return 0
