"""action_check_status: a resident's tickets, and one ticket's history."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps
from actions.report_form import ActionSubmitReport
from actions.status import ActionCheckStatus, ActionHelp
from core.messages import t
from tests.app.actions.helpers import run, tickets


@pytest.fixture
def number(db: sessionmaker[Session], deps: Deps) -> str:
    """A parking ticket resident 700000072 filed (accepted by 和平里第二网格)."""
    run(ActionSubmitReport(deps), "submit_confirmed")
    return str(tickets(db)[0]["number"])


@pytest.mark.parametrize("fixture", ["status_stranger", "status_mine"])
def test_no_tickets_yet(fixture: str, deps: Deps) -> None:
    ran = run(ActionCheckStatus(deps), fixture)
    assert ran.texts == [t("status.none")] and ran.events == []


def test_the_residents_tickets_with_a_history_button_each(number: str, deps: Deps) -> None:
    ran = run(ActionCheckStatus(deps), "status_mine")
    assert ran.texts == [t("status.list") + "\n" + t("status.line", number=number, category="乱停车",
                                                        status=t("status.accepted"))]
    assert ran.payloads() == [f'/check_status{{"ticket":"{number}"}}']
    assert ran.events == []


def test_one_tickets_history(number: str, deps: Deps) -> None:
    ran = run(ActionCheckStatus(deps), "status_one_ticket", ticket=number)
    lines = ran.texts[0].splitlines()
    assert lines[0] == t("history.header", number=number, category="乱停车", status=t("status.accepted"))
    assert len(lines) == 3  # filed (new), routed (accepted)
    assert t("actor.you") in lines[1]


@pytest.mark.parametrize(("fixture", "ticket"), [
    ("status_someone_elses_ticket", None),  # the number exists, but 700000071 did not report it
    ("status_one_ticket", "2001-999999"),  # no such number
])
def test_a_ticket_that_is_not_the_residents_is_not_shown(fixture: str, ticket: str | None, number: str, deps: Deps) -> None:
    ran = run(ActionCheckStatus(deps), fixture, ticket=ticket or number)
    assert ran.texts == [t("status.not_yours")]


@pytest.mark.parametrize(
    ("fixture", "shown", "hidden"),
    [("status_stranger", ["/my", "/help"], ["/duties", "/broadcast", "/invite", "/report"]),
     ("duties_member", ["/my", "/duties"], ["/broadcast", "/invite", "/report"]),
     ("help_secretary", ["/my", "/duties", "/broadcast", "/invite", "/report"], [])],
)
def test_help_shows_each_person_the_commands_of_their_roles(fixture: str, shown: list[str], hidden: list[str], deps: Deps) -> None:
    [text] = run(ActionHelp(deps), fixture).texts
    assert text.startswith(t("help.intro"))
    commands = [line.split()[0] for line in text.splitlines() if line.startswith("/")]
    assert set(shown) <= set(commands) and not set(hidden) & set(commands), commands
    assert (t("help.manager") in text) == ("/broadcast" in shown)
