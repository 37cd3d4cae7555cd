"""The layers, as README's architecture table draws them, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

from core.config import PROJECT_ROOT

# What a handler may take from SQLAlchemy: the Session and sessionmaker types it passes on.
SESSION_TYPES = {"sqlalchemy.orm": {"Session", "sessionmaker"}, "sqlalchemy": {"Engine"}}
MAX_CORE_MODULE_LINES = 500


def _imports(path: Path) -> list[tuple[str, set[str]]]:
    found: list[tuple[str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, {a.name for a in node.names}))
        elif isinstance(node, ast.Import):
            found += [(a.name, set()) for a in node.names]
    return found


def _modules(package: str) -> list[Path]:
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


def test_core_imports_neither_telegram_nor_rasa_nor_a_front_end() -> None:
    for path in _modules("core"):
        for module, _ in _imports(path):
            assert not module.startswith(("telegram", "rasa", "rasa_sdk", "bot", "actions", "web", "sanic")), \
                (path, module)


def test_web_imports_core_and_never_a_chat_front_end() -> None:
    """web/ (Open311) stands beside bot/: it takes core, never bot, actions, nlu, telegram or rasa."""
    modules = _modules("web")
    assert modules
    for path in modules:
        for module, _ in _imports(path):
            assert module.split(".")[0] not in {"bot", "actions", "nlu", "telegram", "rasa", "rasa_sdk", "cli"}, \
                (path, module)


def test_nothing_imports_bot_or_actions_but_themselves_and_tests() -> None:
    for package in ("core", "nlu", "cli", "web"):
        for path in _modules(package):
            for module, _ in _imports(path):
                assert module.split(".")[0] not in {"bot", "actions"} or package == "cli" and module.startswith("bot"), \
                    (path, module)


def test_handlers_run_no_sql_of_their_own() -> None:
    """bot/ calls core services; the only SQLAlchemy names it uses are the session types."""
    for path in _modules("bot"):
        for module, names in _imports(path):
            if module.split(".")[0] == "sqlalchemy":
                assert names <= SESSION_TYPES.get(module, set()), (path, module, names)


def test_no_core_module_is_over_about_500_lines() -> None:
    sizes = {path.relative_to(PROJECT_ROOT): len(path.read_text(encoding="utf-8").splitlines())
             for path in _modules("core")}
    assert {p: n for p, n in sizes.items() if n > MAX_CORE_MODULE_LINES} == {}
