"""Declaring a 战时 incident over one grid of PEOPLE members: the incident, one call and one
`mobilise.call` outbox row (with its three buttons) per person, in one transaction.

Setup: a throw-away SQLite database (or --database-url, an empty PostgreSQL one), the demo
community, PEOPLE made-up members of 和平里第一网格党支部. Then core.mobilise.declare.declare as the
demo's commander, timed. How the calls are delivered is the outbox's (`make bench-mobilise`).

Last stdout line: {"people", "called", "seconds", "database"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from core.db import make_engine, make_session_factory, session_scope  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.mobilise import declare  # noqa: E402
from core.models import AreaLevel, Branch, BranchMember, Grid, IncidentKind, Person  # noqa: E402
from core.registry.importer import import_registry  # noqa: E402
from core.tickets.categories import sync_categories  # noqa: E402

DEMO = ROOT / "data" / "reference" / "demo"
FIRST_ID = 800_000_000  # made-up Telegram ids of the bench's members


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--database-url", help="an empty database (default: a throw-away SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            sync_categories(s)
            import_registry(s, [DEMO])
            branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
            s.execute(insert(Person), [{"display_name": f"党员{i}", "telegram_id": FIRST_ID + i}
                                       for i in range(args.people)])
            ids = s.scalars(select(Person.id).where(Person.telegram_id >= FIRST_ID)).all()
            s.execute(insert(BranchMember), [{"branch_id": branch.id, "person_id": pid, "joined_by": "registry"}
                                             for pid in ids])
        started = time.perf_counter()
        with session_scope(factory) as s:
            grid = s.scalars(select(Grid.id).where(Grid.code == "G-HPL-01")).one()
            commander = s.scalars(select(Person).where(Person.code == "P-0069")).one()
            _, called = declare.declare(s, commander, IncidentKind.flood, AreaLevel.grids, grid_ids=[grid],
                                        order="bench", now=datetime.now(timezone.utc), tz=ZoneInfo("Asia/Shanghai"))
        seconds = time.perf_counter() - started  # the commit included
        engine.dispose()
    print(f"declared over {args.people} members: {called} called in {seconds:.2f} s")
    print(json.dumps({"people": args.people, "called": called, "seconds": round(seconds, 2),
                      "database": url.split(":", 1)[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
