"""`make bench-reminders`: 10,000 duty reminders for 1,000 members, a scheduler restart in the middle.

Setup: a throw-away SQLite database (or --database-url, e.g. PostgreSQL: it is migrated and gets
the demo community plus fresh bench members), MEMBERS party members, and EVENTS one-off study
sessions of BR-HPL-01 whose audience is those members (Audience.people), one reminder offset
each (1 minute), due SPACING seconds apart from ~LEAD seconds after setup: EVENTS x MEMBERS
reminders. The real `core.scheduler.DutyScheduler` (APScheduler, jobs in the database) runs
them; just before the middle job is due it is stopped (as the bot's post_shutdown does) and a
new DutyScheduler is started on the same database, so that job is fired by the new one.

Meanwhile a fake Telegram drains the outbox the way the bot's dispatcher does (outbox.claim,
then mark_sent, batches of 200, in a thread) and records each delivered reminder by its
identity (occurrence, person, offset) parsed from the dedupe key.

Figures:
- lateness = the reminder's outbox row created_at minus its due time (event start - offset),
  i.e. when the reminder was committed to be sent; `delivery_lateness_ms` is the same up to
  the fake Telegram receiving it (depends on the dispatcher, reported for information).
- duplicates = reminders (occurrence, person, offset) delivered to the fake more than once.
- lost = expected reminders never delivered by the end (deadline: last due + GRACE seconds).

Last stdout line: {"reminders", "lateness_ms": {"p50", "p99"}, "duplicates", "lost", ...}.
Targets: p99 < 1000 ms, 0 duplicates, 0 lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from core.db import make_engine, make_session_factory, session_scope  # noqa: E402
from core.duties import events as duty_events  # noqa: E402
from core.messaging import outbox  # noqa: E402
from core.models import Audience, Branch, EventKind, EventOccurrence, OutboxMessage, Person  # noqa: E402
from core.registry import demo  # noqa: E402
from core.scheduler import DutyScheduler  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")

OFFSET = 1  # minutes before the start
GRACE = 20.0  # seconds after the last due time for the last reminders to be delivered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


class FakeTelegram:
    """Drains the outbox like the bot's dispatcher and remembers what it 'sent', and when."""

    def __init__(self, factory, prefix: str) -> None:  # type: ignore[no-untyped-def]
        self.factory, self.prefix = factory, prefix
        self.delivered: Counter[tuple[int, int, int]] = Counter()
        self.first_at: dict[tuple[int, int, int], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-telegram", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with session_scope(self.factory) as s:
                    batch = outbox.claim(s, limit=200)
                    for item in batch:
                        outbox.mark_sent(s, item.id, item.id)
                    keys = {r.id: r.dedupe_key for r in s.execute(select(
                        OutboxMessage.id, OutboxMessage.dedupe_key).where(
                        OutboxMessage.id.in_([i.id for i in batch])))} if batch else {}
            except Exception:  # noqa: BLE001 - e.g. database locked: try again
                logging.getLogger("bench").exception("fake telegram pass failed")
                time.sleep(0.05)
                continue
            now = time.time()
            for item in batch:
                key = keys[item.id]
                if key.startswith(self.prefix):  # remind:<occ>:<start>:<person>:<offset>
                    _, occ, _, person, offset = key.split(":")
                    ident = (int(occ), int(person), int(offset))
                    self.delivered[ident] += 1
                    self.first_at.setdefault(ident, now)
            if not batch:
                self.stop.wait(0.05)


def setup(url: str, members: int, events: int, lead: float, spacing: float, group: int
          ) -> tuple[dict[int, datetime], dict[int, list[int]]]:
    """Members and events; the due time of each occurrence and the person ids it reminds."""
    engine = make_engine(url)
    factory, _ = demo.prepare(engine)
    base_tg = 900_000_000 + int(time.time()) % 1_000_000 * 100  # fresh ids on a reused database
    with session_scope(factory) as s:
        people = [Person(telegram_id=base_tg + i, display_name=f"党员{i:04d}") for i in range(members)]
        s.add_all(people)
        s.flush()
        ids = [p.id for p in people]
    t0 = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=lead)
    due: dict[int, datetime] = {}
    audience: dict[int, list[int]] = {}
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        secretary = s.scalars(select(Person).where(Person.code == "P-0001")).one()
        for i in range(events):
            at = t0 + timedelta(seconds=round(i * spacing))
            chosen = [ids[(i * group + k) % members] for k in range(group)]
            event = duty_events.create_event(
                s, secretary, branch_id=branch.id, kind=EventKind.study, title=f"压测学习{i}", place="党群服务中心",
                starts_at=at + timedelta(minutes=OFFSET), audience=Audience.people, person_ids=chosen,
                reminder_offsets=[OFFSET], notify=False, tz=TZ.key)
            s.flush()
            occ_id = s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()
            due[occ_id] = at
            audience[occ_id] = chosen
    engine.dispose()
    return due, audience


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite database")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--group", type=int, help="members per event (default: all of them)")
    parser.add_argument("--lead", type=float, default=20.0, help="seconds from setup to the first due time")
    parser.add_argument("--spacing", type=float, default=10.0, help="seconds between due times")
    parser.add_argument("--downtime", type=float, default=0.0, help="seconds between stop and the new start")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    group = args.group or args.members
    tmp = tempfile.TemporaryDirectory(prefix="gridbot-bench-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"

    started = time.monotonic()
    due, audience = setup(url, args.members, args.events, args.lead, args.spacing, group)
    expected = {(occ, person, OFFSET) for occ, people in audience.items() for person in people}
    print(f"setup {time.monotonic() - started:.1f}s: {len(expected)} reminders for {args.members} members, "
          f"{len(due)} jobs due {min(due.values()):%H:%M:%S}–{max(due.values()):%H:%M:%S} UTC", flush=True)

    factory = make_session_factory(make_engine(url))
    fake = FakeTelegram(factory, "remind:")
    fake.thread.start()
    first = DutyScheduler(url, tz=ZoneInfo("Asia/Shanghai"), sync_interval=5.0, poll_interval=1.0)
    first.start()
    if not first.wait_until_leader(30):
        print("the first scheduler never led", file=sys.stderr)
        return 1

    ordered = sorted(due.values())
    middle = ordered[len(ordered) // 2]
    stop_at = middle - timedelta(seconds=0.5)
    time.sleep(max(0.0, (stop_at - datetime.now(timezone.utc)).total_seconds()))
    t_stop = time.monotonic()
    first.stop()
    stopped_in = time.monotonic() - t_stop
    time.sleep(args.downtime)
    t_start = time.monotonic()
    second = DutyScheduler(url, tz=ZoneInfo("Asia/Shanghai"), sync_interval=5.0, poll_interval=1.0)
    second.start()
    second.wait_until_leader(30)
    print(f"restart: old scheduler stopped in {stopped_in * 1000:.0f} ms, new one leading after "
          f"{(time.monotonic() - t_start) * 1000:.0f} ms (+{args.downtime:g} s down), "
          f"{(middle - datetime.now(timezone.utc)).total_seconds():.2f} s before a job is due", flush=True)

    deadline = time.monotonic() + (ordered[-1] - datetime.now(timezone.utc)).total_seconds() + GRACE
    while time.monotonic() < deadline and len(fake.delivered) < len(expected):
        time.sleep(0.2)
    time.sleep(1.0)  # a duplicate would show up now
    second.stop()
    fake.stop.set()
    fake.thread.join(10)

    with session_scope(factory) as s:
        rows = s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.created_at)
                         .where(OutboxMessage.dedupe_key.startswith("remind:"))).all()
    lateness, delivery = [], []
    for key, created in rows:
        _, occ, _, person, offset = key.split(":")
        ident = (int(occ), int(person), int(offset))
        if ident not in expected:
            continue
        lateness.append((created - due[ident[0]]).total_seconds() * 1000)
        if ident in fake.first_at:
            delivery.append((fake.first_at[ident] - due[ident[0]].timestamp()) * 1000)
    duplicates = sum(1 for n in fake.delivered.values() if n > 1)
    lost = len(expected - set(fake.delivered))
    per_job: dict[int, list[float]] = {}
    for key, created in rows:
        occ = int(key.split(":")[1])
        if occ in due:
            per_job.setdefault(occ, []).append((created - due[occ]).total_seconds() * 1000)
    for occ in sorted(per_job, key=lambda o: due[o]):
        values = per_job[occ]
        marker = " (after the restart)" if due[occ] == middle else ""
        print(f"job due {due[occ]:%H:%M:%S}: {len(values)} queued, lateness {min(values):.0f}–{max(values):.0f} ms"
              f"{marker}")
    result = {
        "reminders": len(expected),
        "lateness_ms": {"p50": round(percentile(lateness, 0.50), 1), "p99": round(percentile(lateness, 0.99), 1)},
        "duplicates": duplicates,
        "lost": lost,
        "queued": len(lateness),
        "delivery_lateness_ms": {"p50": round(percentile(delivery, 0.50), 1),
                                 "p99": round(percentile(delivery, 0.99), 1)},
        "database": url.split(":", 1)[0],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result), flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
