"""action_rate: the return visit answered in words (core.tickets.ratings, core.tickets.visit)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps
from actions.rating import ActionRate
from actions.report_form import ActionReply, ActionSubmitReport
from core.db import read_scope, session_scope
from core.messages import t
from core.messaging import prompts
from core.models import Branch, Person, Ticket, TicketStatus
from core.tickets import service as ticket_service
from core.tickets import visit
from tests.app.actions.helpers import run

S = TicketStatus
T0 = datetime(2026, 12, 10, 2, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
RESIDENT = 700000072  # the sender of the fixtures, who files submit_confirmed


def _ticket(db: sessionmaker[Session]) -> Ticket:
    """The newest ticket as it is now, detached (its columns loaded)."""
    with read_scope(db) as s:
        ticket = s.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
        assert ticket is not None
        s.expunge(ticket)
        return ticket


@pytest.fixture
def resolved(db: sessionmaker[Session], deps: Deps) -> Ticket:
    """A ticket the fixtures' sender filed, claimed and resolved by the secretary of its branch."""
    run(ActionSubmitReport(deps), "submit_confirmed")
    with session_scope(db) as s:
        ticket = s.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
        assert ticket is not None and ticket.grid_id is not None
        branch = s.scalars(select(Branch).where(Branch.grid_id == ticket.grid_id)).one()
        handler = s.get(Person, branch.secretary_id)
        ticket_service.claim(s, ticket.id, handler, now=T0)
        ticket_service.resolve(s, ticket.id, handler, "已处理", now=T0 + HOUR)
    return _ticket(db)


def _buttons(ran_message: dict, ticket: Ticket) -> list[tuple[str, str]]:
    return [(b["title"], b["payload"]) for b in ran_message["buttons"]]


def score_row(ticket: Ticket) -> list[tuple[str, str]]:
    return [(t("rating.3"), f"r:{ticket.id}:3"), (t("rating.2"), f"r:{ticket.id}:2"), (t("rating.1"), f"r:{ticket.id}:1")]


def test_solved_in_words_asks_the_satisfaction_with_its_row_only(resolved: Ticket, deps: Deps,
                                                                 db: sessionmaker[Session]) -> None:
    ran = run(ActionRate(deps), "visit_solved_thanks")  # "好了，谢谢"
    assert ran.texts == [t("visit.noted") + t("visit.ask_score", number=resolved.number)]
    assert _buttons(ran.messages[0], resolved) == score_row(resolved)
    ticket = _ticket(db)
    assert ticket.status is S.resolved and (ticket.solved, ticket.rating) == (True, None)
    ran = run(ActionRate(deps), "visit_fair")  # "还行": the missing half; the visit is complete
    assert ran.texts == [t("rating.thanks")] and ran.messages[0]["buttons"] == []
    ticket = _ticket(db)
    assert ticket.status is S.closed and (ticket.solved, ticket.rating) == (True, 2)
    assert run(ActionRate(deps), "visit_fair").texts == [t("rating.nothing")]


def test_satisfaction_first_asks_whether_it_is_solved(resolved: Ticket, deps: Deps, db: sessionmaker[Session]) -> None:
    ran = run(ActionRate(deps), "visit_fair")
    assert ran.texts == [t("visit.noted") + t("visit.ask_solved", number=resolved.number)]
    assert _buttons(ran.messages[0], resolved) == [(t("visit.solved_1"), f"r:{resolved.id}:y"),
                                                  (t("visit.solved_0"), f"r:{resolved.id}:n")]
    assert _ticket(db).status is S.resolved  # 基本满意 alone closes nothing
    # the same words again answer nothing new: the open question is asked again
    ran = run(ActionRate(deps), "visit_fair")
    assert ran.texts == [t("visit.ask_solved", number=resolved.number)]
    assert _ticket(db).rating == 2


def test_both_in_one_message_close_the_ticket(resolved: Ticket, deps: Deps, db: sessionmaker[Session]) -> None:
    ran = run(ActionRate(deps), "visit_solved_and_satisfied")  # "修好了，很满意"
    assert ran.texts == [t("rating.thanks")]
    ticket = _ticket(db)
    assert ticket.status is S.closed and (ticket.solved, ticket.rating) == (True, 3)


def test_still_broken_reopens_asks_what_is_wrong_and_the_satisfaction(resolved: Ticket, deps: Deps,
                                                                       db: sessionmaker[Session]) -> None:
    ran = run(ActionRate(deps), "visit_still_broken")  # "还是不行"
    assert ran.texts == [t("rating.ask_reason", number=resolved.number),
                         t("visit.ask_score", number=resolved.number)]
    assert _buttons(ran.messages[1], resolved) == score_row(resolved)
    ticket = _ticket(db)
    assert ticket.status is S.reopened and (ticket.solved, ticket.rating) == (False, None)
    assert visit.missing(ticket) == ("score",)
    with read_scope(db) as s:
        assert prompts.current(s, RESIDENT) == prompts.Asked(prompts.REOPEN, {"ticket": ticket.id})


def test_thanks_answer_the_visit_when_one_waits(resolved: Ticket, deps: Deps, db: sessionmaker[Session]) -> None:
    ran = run(ActionReply(deps), "visit_thanks_solved")
    assert ran.texts == [t("visit.noted") + t("visit.ask_score", number=resolved.number)]
    assert _ticket(db).solved is True and _ticket(db).status is S.resolved


def test_words_that_answer_nothing_ask_the_first_question(resolved: Ticket, deps: Deps,
                                                          db: sessionmaker[Session]) -> None:
    ran = run(ActionRate(deps), "visit_unclear")
    assert ran.texts == [t("visit.ask_solved", number=resolved.number)]
    assert [p for p in ran.payloads()] == [f"r:{resolved.id}:y", f"r:{resolved.id}:n"]
    assert _ticket(db).status is S.resolved and _ticket(db).solved is None


def test_nothing_to_answer(deps: Deps) -> None:
    assert run(ActionRate(deps), "visit_fair").texts == [t("rating.nothing")]


def test_thanks_that_say_it_is_solved_answer_a_waiting_visit(deps: Deps, db: sessionmaker[Session]) -> None:
    """"已经好了 太谢谢了" is Rasa's `thank`: with nothing waiting, the usual answer; with a visit
    waiting, its 已解决 (and the satisfaction asked)."""
    ran = run(ActionReply(deps), "visit_thanks_solved")
    assert [m["response"] for m in ran.messages] == ["utter_thank"]
    run(ActionSubmitReport(deps), "submit_confirmed")
    ran = run(ActionReply(deps), "visit_thanks_solved")
    assert [m["response"] for m in ran.messages] == ["utter_thank"]  # filed, not resolved: nothing waits
