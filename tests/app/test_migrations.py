"""The Alembic migration builds the schema from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from core.db import make_engine
from core.migrate import downgrade, upgrade
from core.models import Base, Branch, Grid, Person


def test_upgrade_from_empty_creates_every_table_and_matches_models(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert inspect(engine).get_table_names() == []
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    upgrade(engine)  # idempotent
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_members_who_redeemed_an_invite_are_marked_as_joined_by_invite(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    upgrade(engine, "c8d9e0f1a2b3")  # before branch_members.joined_by
    with engine.begin() as conn:  # communities has grown columns since: plain SQL
        conn.execute(text("INSERT INTO streets (id, code, name) VALUES (1, 'S', 'S')"))
        conn.execute(text("INSERT INTO communities (id, code, name, street_id) VALUES (1, 'C', 'C', 1)"))
    with Session(engine) as session, session.begin():  # tables the new revision leaves alone
        for row in (Grid(id=1, code="G", name="G", community_id=1), Branch(id=1, code="B", name="B", grid_id=1),
                    Person(id=1, display_name="a"), Person(id=2, display_name="b")):
            session.add(row)
            session.flush()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO branch_members (id, branch_id, person_id) VALUES (1, 1, 1), (2, 1, 2)"))
        conn.execute(text("INSERT INTO invite_codes (code, branch_id, created_at, expires_at, used_by_id, used_at) "
                          "VALUES ('ABCD2345', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 2, CURRENT_TIMESTAMP)"))
    upgrade(engine)
    with engine.connect() as conn:
        joined = dict(conn.execute(text("SELECT person_id, joined_by FROM branch_members")).all())
    assert joined == {1: "registry", 2: "invite"}
    downgrade(engine, "base")
    engine.dispose()
