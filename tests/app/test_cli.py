"""The `gridbot` command as an operator uses it: real process, real database file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

GRIDBOT = [sys.executable, "-m", "cli.main"]


def run(args: list[str], db: Path, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "LOG_LEVEL": "WARNING"}
    return subprocess.run(GRIDBOT + args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "gridbot.db"
    result = run(["demo"], db)
    assert result.returncode == 0, result.stderr
    return db


def test_demo_is_idempotent_and_import_reports_no_changes(demo_db: Path) -> None:
    result = run(["import", "--json", "data/reference/demo"], demo_db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["changes"] == 0


def test_import_error_exits_1_with_file_and_line(demo_db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "buildings.csv"
    bad.write_text("code,grid,address\nB-X1,G-HPL-01,新楼1号楼\nB-X2,G-NOPE,新楼2号楼\n", encoding="utf-8")
    result = run(["import", str(bad)], demo_db)
    assert result.returncode == 1
    assert f"{bad}:3: building B-X2: unknown grid 'G-NOPE' in grid" in result.stderr
    assert "nothing was changed" in result.stderr
    listing = run(["route", "building", "B-X1"], demo_db)
    assert listing.returncode == 3  # B-X1 was valid but not imported: all or nothing


def test_import_dry_run_reports_the_changes_and_keeps_none(demo_db: Path, tmp_path: Path) -> None:
    new = tmp_path / "buildings.csv"
    new.write_text("code,grid,address\nB-DRY1,G-HPL-01,试运行1号楼\n", encoding="utf-8")
    result = run(["import", "--dry-run", "--json", str(new)], demo_db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["changes"] == 1
    assert run(["route", "building", "B-DRY1"], demo_db).returncode == 3  # not kept
    assert json.loads(run(["import", "--json", str(new)], demo_db).stdout)["changes"] == 1
    assert run(["route", "building", "B-DRY1"], demo_db).returncode == 0  # kept without --dry-run


def test_route_commands(demo_db: Path) -> None:
    result = run(["route", "text", "和平裡小區東門"], demo_db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["grid"] == "G-HPL-02"
    ambiguous = run(["route", "text", "3号楼"], demo_db)
    assert ambiguous.returncode == 3
    assert json.loads(ambiguous.stdout)["status"] == "ambiguous"
    point = run(["route", "point", "39.933326", "116.444599"], demo_db)
    assert json.loads(point.stdout)["grid"] == "G-HPL-01"


def test_tickets_json_lists_filed_tickets(demo_db: Path) -> None:
    from sqlalchemy import select

    from core.config import get_settings
    from core.db import make_engine, make_session_factory, session_scope
    from core.models import Building
    from core.tickets.lifecycle import NewTicket, file_ticket

    engine = make_engine(f"sqlite:///{demo_db}")
    with session_scope(make_session_factory(engine)) as s:
        building = s.scalar(select(Building).where(Building.code == "B-HPL-01-07"))
        assert building is not None
        file_ticket(s, NewTicket("fire_safety", "7号楼消防通道被车堵死了", building_id=building.id,
                                 grid_id=building.grid_id), tz=get_settings().tz)
    engine.dispose()
    result = run(["tickets", "--json"], demo_db)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["category"] == "fire_safety"
    assert rows[0]["grid"] == "G-HPL-01" and rows[0]["building"] == "B-HPL-01-07"
    assert rows[0]["status"] == "new"
    assert rows[0]["created"].endswith("+08:00")
    assert set(rows[0]) == {"number", "category", "grid", "building", "status", "created"}
