"""Open311 services: our categories, and the questions some of them ask (service definitions).

A service is an active category from the categories table, its `group` the category's kind;
emergencies are not offered (Open311 is for non-emergency requests: a fire is 119, not a form).
A category's questions are data in data/categories.yml (`questions`), read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Category, CategoryKind
from core.tickets.categories import CATEGORIES_FILE

DATATYPES = {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
LISTS = {"singlevaluelist", "multivaluelist"}


@dataclass(frozen=True)
class Question:
    code: str
    question: str
    datatype: str
    required: bool
    values: tuple[tuple[str, str], ...]  # (key, name)

    def as_attribute(self, order: int) -> dict[str, object]:
        attribute: dict[str, object] = {
            "variable": True, "code": self.code, "datatype": self.datatype, "required": self.required,
            "datatype_description": None, "order": order, "description": self.question,
        }
        if self.datatype in LISTS:
            attribute["values"] = [{"key": k, "name": n} for k, n in self.values]
        return attribute


@lru_cache(maxsize=4)
def _questions(path: Path, mtime: float) -> dict[str, tuple[Question, ...]]:  # mtime: re-read on change
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found: dict[str, tuple[Question, ...]] = {}
    for item in doc.get("categories", []):
        questions = []
        for q in item.get("questions") or []:
            if q.get("datatype") not in DATATYPES:
                raise ValueError(f"{path}: category {item.get('code')}: unknown datatype {q.get('datatype')!r}")
            values = tuple((str(k), str(v)) for k, v in (q.get("values") or {}).items())
            questions.append(Question(str(q["code"]), str(q["question"]), q["datatype"], bool(q.get("required")),
                                      values))
        found[str(item.get("code"))] = tuple(questions)
    return found


def questions_of(code: str, path: Path = CATEGORIES_FILE) -> tuple[Question, ...]:
    return _questions(path, path.stat().st_mtime).get(code, ())


def offered(session: Session) -> list[Category]:
    """The categories offered as services, by code."""
    return list(session.scalars(select(Category).where(Category.active.is_(True),
                                                       Category.kind != CategoryKind.emergency)
                                .order_by(Category.code)))


def service(category: Category) -> dict[str, object]:
    return {"service_code": category.code, "service_name": category.name, "description": category.description,
            "metadata": bool(questions_of(category.code)), "type": "realtime", "keywords": None,
            "group": category.kind.value}


def services(session: Session) -> list[dict[str, object]]:
    return [service(c) for c in offered(session)]


def find(session: Session, code: str) -> Category | None:
    """The offered category with this code, or None."""
    category = session.get(Category, code)
    if category is None or not category.active or category.kind is CategoryKind.emergency:
        return None
    return category


def definition(category: Category) -> dict[str, object]:
    return {"service_code": category.code,
            "attributes": [q.as_attribute(i) for i, q in enumerate(questions_of(category.code), start=1)]}
