"""The demo community (data/reference/demo): what `gridbot demo`, the benchmarks and the tests start from."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT
from core.db import make_session_factory, session_scope
from core.migrate import upgrade
from core.registry.importer import ImportReport, import_registry
from core.tickets.categories import sync_categories

DEMO_REGISTRY = PROJECT_ROOT / "data" / "reference" / "demo"


def prepare(engine: Engine) -> tuple[sessionmaker[Session], ImportReport]:
    """Migrate, load the categories and import the demo registry (each step idempotent)."""
    upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        sync_categories(session)
    with session_scope(factory) as session:
        report = import_registry(session, [DEMO_REGISTRY])
    return factory, report
