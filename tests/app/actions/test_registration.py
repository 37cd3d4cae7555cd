"""Every action class in actions/ is registered in the domain, and every registered custom
action has a class (and so a test module here)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from rasa_sdk import Action

import actions
from tests.app.actions.helpers import domain


def test_the_domain_registers_exactly_the_action_classes() -> None:
    names = set()
    for module in pkgutil.iter_modules(actions.__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"actions.{module.name}")
        names |= {cls().name() for _, cls in inspect.getmembers(loaded, inspect.isclass)
                  if issubclass(cls, Action) and cls.__module__ == loaded.__name__}
    custom = {a for a in domain()["actions"] if a.startswith(("action_", "validate_"))}
    assert names == custom
    assert len(names) == 16
