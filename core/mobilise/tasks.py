"""Tasks: the commander posts one to a grid of the incident's area (卡口执勤, 入户排查, 转移老人,
沙袋, or another kind, with a line of what and where); the people of that grid's unit who answered
到 or 稍后到 are told, one of them takes it (领取) and marks it done (完成). Refusals: a grid
outside the area, a task of another grid, a task someone else took, anything on a closed incident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.messages import t
from core.messaging import outbox
from core.mobilise import area, buttons, events, roll
from core.mobilise.answers import call_of
from core.models import Answer, Grid, IncidentCall, IncidentTask, Person, TaskKind, TaskState

TASK_KIND = "mobilise.task"
TEXT_LIMIT = 200


def clean_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise NotAllowed(t("mobilise.deny.task_empty"))
    if len(text) > TEXT_LIMIT:
        raise NotAllowed(t("mobilise.deny.task_long", limit=TEXT_LIMIT))
    return text


def check_grid(session: Session, person: Person | None, incident_id: int, grid_id: int | None) -> Grid:
    """The grid a commander may post a task to: one of the incident's, which is still going on."""
    incident = area.open_incident(session, incident_id)
    area.require_command(session, person, incident)
    grid = session.get(Grid, grid_id) if grid_id is not None else None
    if grid is None or grid.id not in area.grid_ids(session, incident.id):
        raise NotAllowed(t("mobilise.deny.task_grid", grid=grid.name if grid else "",
                           area=area.label(session, incident)))
    return grid


def take_button(task_id: int) -> list[list[dict[str, Any]]]:
    return [[buttons.button(t("mobilise.button_take"), buttons.TAKE, task_id)]]


def taken_buttons(task_id: int, incident_id: int) -> list[list[dict[str, Any]]]:
    return [[buttons.button(t("mobilise.button_check_in"), buttons.CHECK_IN, incident_id),
             buttons.button(t("mobilise.button_done"), buttons.DONE, task_id)]]


def post(session: Session, person: Person | None, incident_id: int, grid_id: int, kind: TaskKind, text: str, *,
         now: datetime) -> tuple[IncidentTask, int]:
    """Post the task; (it, how many of the grid's unit were told)."""
    grid = check_grid(session, person, incident_id, grid_id)
    assert person is not None
    task = IncidentTask(incident_id=incident_id, grid_id=grid.id, kind=kind, text=clean_text(text),
                        state=TaskState.open, posted_by_id=person.id, posted_at=now)
    session.add(task)
    session.flush()
    events.record(session, incident_id, "task_posted", now, actor=person, grid_id=grid.id, task_id=task.id,
                  task_kind=kind.value)
    line = roll.task_line(session, task)
    told = 0
    for person_id, chat_id in session.execute(
            select(IncidentCall.person_id, Person.telegram_id).join(Person, Person.id == IncidentCall.person_id)
            .where(IncidentCall.incident_id == incident_id, IncidentCall.grid_id == grid.id,
                   IncidentCall.answer.in_((Answer.coming, Answer.late))).order_by(IncidentCall.id)):
        told += outbox.enqueue(session, dedupe_key=f"mobilise:task:{task.id}:{person_id}", kind=TASK_KIND,
                               chat_id=int(chat_id), payload={"text": t("mobilise.task_notice", task=line),
                                                              "buttons": take_button(task.id)})
    return task, told


def _task(session: Session, task_id: int | None) -> IncidentTask:
    task = session.get(IncidentTask, task_id) if task_id is not None else None
    if task is None:
        raise NotAllowed(t("mobilise.deny.gone"))
    return task


def _tell_commander(session: Session, task: IncidentTask, key: str, what: str, person: Person) -> None:
    commander = session.get(Person, task.posted_by_id) if task.posted_by_id else None
    if commander is None or commander.telegram_id is None or commander.id == person.id:
        return
    outbox.enqueue(session, dedupe_key=f"mobilise:{key}:{task.id}", kind=TASK_KIND, chat_id=commander.telegram_id,
                   payload={"text": t(what, task=roll.task_line(session, task), name=person.display_name)})


def take(session: Session, person: Person | None, task_id: int, *, now: datetime) -> IncidentTask:
    task = _task(session, task_id)
    area.open_incident(session, task.incident_id)
    call = call_of(session, task.incident_id, person)
    assert person is not None
    if call.grid_id != task.grid_id:
        grids = {g.id: g.name for g in session.scalars(select(Grid).where(Grid.id.in_((call.grid_id, task.grid_id))))}
        raise NotAllowed(t("mobilise.deny.task_other_grid", grid=grids.get(task.grid_id, ""),
                           own=grids.get(call.grid_id, "")))
    if call.answer not in (Answer.coming, Answer.late):
        raise NotAllowed(t("mobilise.deny.task_answer_first"))
    if task.state is not TaskState.open:
        if task.taken_by_id == person.id and task.state is TaskState.taken:
            raise NotAllowed(t("mobilise.deny.task_yours"))
        raise NotAllowed(t("mobilise.deny.task_taken", state=roll.task_line(session, task)))
    took = session.execute(update(IncidentTask).where(IncidentTask.id == task.id, IncidentTask.state == TaskState.open)
                           .values(state=TaskState.taken, taken_by_id=person.id, taken_at=now)
                           .execution_options(synchronize_session=False))
    if not getattr(took, "rowcount", 0):  # another press took it meanwhile
        raise NotAllowed(t("mobilise.deny.task_taken", state=""))
    session.refresh(task)
    events.record(session, task.incident_id, "task_taken", now, actor=person, grid_id=task.grid_id, task_id=task.id)
    _tell_commander(session, task, "taken", "mobilise.task_taken_notice", person)
    return task


def done(session: Session, person: Person | None, task_id: int, *, now: datetime) -> IncidentTask:
    task = _task(session, task_id)
    area.open_incident(session, task.incident_id)
    if person is None or task.taken_by_id != person.id:
        raise NotAllowed(t("mobilise.deny.task_not_yours"))
    if task.state is TaskState.done:
        raise NotAllowed(t("mobilise.deny.task_done_already"))
    task.state, task.done_at = TaskState.done, now
    events.record(session, task.incident_id, "task_done", now, actor=person, grid_id=task.grid_id, task_id=task.id)
    session.flush()
    _tell_commander(session, task, "done", "mobilise.task_done_notice", person)
    return task


def open_in_grid(session: Session, incident_id: int, grid_id: int) -> list[IncidentTask]:
    return list(session.scalars(select(IncidentTask).where(
        IncidentTask.incident_id == incident_id, IncidentTask.grid_id == grid_id,
        IncidentTask.state == TaskState.open).order_by(IncidentTask.id)))


def taken_by(session: Session, incident_id: int, person_id: int) -> IncidentTask | None:
    """The task `person_id` holds now in the incident (taken, not done), the newest."""
    return session.scalar(select(IncidentTask).where(
        IncidentTask.incident_id == incident_id, IncidentTask.taken_by_id == person_id,
        IncidentTask.state == TaskState.taken).order_by(IncidentTask.id.desc()).limit(1))
