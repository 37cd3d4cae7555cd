"""Every action class in actions/ is registered in the domain and served by the action server,
and every registered custom action has a class (and so a test module here)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from rasa_sdk import Action

import actions
from actions.__main__ import action_classes
from actions.deps import Deps
from tests.app.actions.helpers import domain


def _classes() -> set[type[Action]]:
    found: set[type[Action]] = set()
    for module in pkgutil.iter_modules(actions.__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"actions.{module.name}")
        found |= {cls for _, cls in inspect.getmembers(loaded, inspect.isclass)
                  if issubclass(cls, Action) and cls.__module__ == loaded.__name__ and not inspect.isabstract(cls)
                  and cls.__name__ != "GridAction"}
    return found


def test_the_domain_registers_exactly_the_action_classes(deps: Deps) -> None:
    names = {cls(deps).name() for cls in _classes()}  # type: ignore[call-arg]
    custom = {a for a in domain()["actions"] if a.startswith(("action_", "validate_"))}
    assert names == custom
    assert len(names) == 25


def test_the_server_serves_every_action_class_with_the_dependencies(deps: Deps) -> None:
    assert set(action_classes()) == _classes()
    assert all(factory(deps).deps is deps for factory in action_classes())
