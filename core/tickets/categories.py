"""Load the category table from data/categories.yml (upsert by code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import PROJECT_ROOT
from core.models import Category, CategoryKind

CATEGORIES_FILE = PROJECT_ROOT / "data" / "categories.yml"


class CategoryFileError(ValueError):
    pass


def read_categories(path: Path = CATEGORIES_FILE) -> list[dict[str, Any]]:
    """Return category rows with their time limits resolved from kind defaults."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    kinds = doc.get("kinds", {})
    rows = []
    seen: set[str] = set()
    for index, item in enumerate(doc.get("categories", []), start=1):
        code = item.get("code")
        if not code or code in seen:
            raise CategoryFileError(f"{path}: category #{index}: missing or duplicate code {code!r}")
        seen.add(code)
        kind = item.get("kind")
        if kind not in kinds:
            raise CategoryFileError(f"{path}: category {code}: unknown kind {kind!r}")
        limits = {**kinds[kind], **{k: item[k] for k in ("respond_minutes", "resolve_minutes") if k in item}}
        rows.append(
            {
                "code": code,
                "name": item["name"],
                "kind": CategoryKind(kind),
                "description": item.get("description", ""),
                "respond_minutes": int(limits["respond_minutes"]),
                "resolve_minutes": int(limits["resolve_minutes"]),
                "active": bool(item.get("active", True)),
            }
        )
    return rows


def sync_categories(session: Session, path: Path = CATEGORIES_FILE) -> int:
    """Upsert categories; return how many rows were created or changed."""
    existing = {c.code: c for c in session.scalars(select(Category))}
    changed = 0
    for row in read_categories(path):
        category = existing.get(row["code"])
        if category is None:
            session.add(Category(**row))
            changed += 1
            continue
        for key, value in row.items():
            if getattr(category, key) != value:
                setattr(category, key, value)
                changed += 1
    session.flush()
    return changed
