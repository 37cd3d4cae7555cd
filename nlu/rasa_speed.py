"""Rasa 3.6's per-message overheads that a profile of our traffic found, cut without changing
what Rasa decides (docs/benchmarks.md, "Rasa's time per message", has the figures).

cProfile of the Rasa server under `make bench-chat` (200 residents reporting and confirming:
report form, RulePolicy, MemoizationPolicy, our channel) put these among the largest costs that
are not the dialogue itself:

1. `Event.resolve_by_type` walks every subclass of `Event` (recursively, with `inspect.isabstract`
   on each) for every event it deserialises: each turn loads the whole tracker from the tracker
   store, so this ran about forty times a message and took 8 % of the server's time. The patch
   keeps Rasa's answer per type name (the first subclass in Rasa's own order, as before); a name
   it does not know goes to Rasa's own function, which also learns classes imported later.
2. The SQLite tracker store (the single machine's default, endpoints.yml) ran in SQLite's
   rollback-journal mode: several fsyncs per commit, 8 % of the time. It now runs in WAL mode,
   as our own database does (core/db.py): one fsync per commit, equally durable.
3. Each graph run (NLU once a message, the policies once per predicted action) went through
   `dask.get`, whose scheduling (ordering the graph, task bookkeeping) cost 6 % — more than
   several of the components it ran. Rasa runs it synchronously in one thread anyway; the patch
   runs the same nodes with the same inputs, each once, needs first, in a plain loop.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.core import tracker_store
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner import dask as dask_runner
from rasa.shared.core import events

log = logging.getLogger(__name__)

_ORIGINAL_RESOLVE = events.Event.resolve_by_type
_ORIGINAL_SQL_INIT = tracker_store.SQLTrackerStore.__init__
_EVENT_TYPES: dict[str, type[events.Event]] = {}


def _resolve_by_type(type_name: str, default: type[events.Event] | None = None) -> type[events.Event] | None:
    found = _EVENT_TYPES.get(type_name)
    if found is not None:
        return found
    # Rasa's own walk (also: "topic", the default, the error for an unknown name), remembered.
    resolved = _ORIGINAL_RESOLVE(type_name, default)
    if resolved is not None and resolved is not default and getattr(resolved, "type_name", None) == type_name:
        _EVENT_TYPES[type_name] = resolved
    return resolved


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sql_tracker_store_init(self: tracker_store.SQLTrackerStore, *args: Any, **kwargs: Any) -> None:
    _ORIGINAL_SQL_INIT(self, *args, **kwargs)
    if self.engine.dialect.name == "sqlite":
        from sqlalchemy import event  # noqa: PLC0415

        event.listen(self.engine, "connect", _sqlite_wal)


def _run_graph(self: dask_runner.DaskGraphRunner, inputs: dict[str, Any] | None = None,
               targets: list[str] | None = None) -> dict[str, Any]:
    """DaskGraphRunner.run without dask: the same minimal graph and inputs, each node run once
    after the nodes it needs, the results as dask returned them ({name: (name, output)})."""
    run_targets = targets if targets else self._graph_schema.target_names
    graph = self._build_dask_graph(self._graph_schema.minimal_graph_schema(run_targets))
    if inputs:
        self._add_inputs_to_graph(inputs, graph)
    done: dict[str, Any] = {}

    def value(key: str) -> Any:
        if key in done:
            return done[key]
        # Depth-first without recursion limits: the graphs are shallow, but stay safe.
        stack = [key]
        while stack:
            name = stack[-1]
            if name in done:  # needed twice (a diamond): already run
                stack.pop()
                continue
            task = graph[name]
            if not (isinstance(task, tuple) and task and callable(task[0])):
                done[name] = task  # an input: (name, value), as dask hands it on
                stack.pop()
                continue
            missing = [k for k in task[1:] if isinstance(k, str) and k in graph and k not in done]
            if missing:
                stack.extend(missing)
                continue
            done[name] = task[0](*(done[k] if isinstance(k, str) and k in graph else k for k in task[1:]))
            stack.pop()
        return done[key]

    try:
        return dict(value(target) for target in run_targets)
    except RuntimeError as exc:
        raise GraphRunError("Error running runner.") from exc


def apply() -> None:
    events.Event.resolve_by_type = staticmethod(_resolve_by_type)  # type: ignore[method-assign,assignment]
    tracker_store.SQLTrackerStore.__init__ = _sql_tracker_store_init  # type: ignore[method-assign]
    dask_runner.DaskGraphRunner.run = _run_graph  # type: ignore[method-assign]
