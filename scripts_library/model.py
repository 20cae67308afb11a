"""The script's life: states, the transitions between them, and the two-person rule.

Pure functions over plain values: the store loads a script, asks :func:`transition` what
the action leads to (or why it is refused), and writes the result with its audit entry.

States: ``draft → in_review → approved → retired``. A reviewer may return a script in
review to draft. Editing an approved script starts a new draft version while the approved
one stays live; editing a draft or a script in review changes that version and makes the
editor one of its authors. Nobody who wrote a version may approve it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from scripts_library.templates import unfilled


class State(StrEnum):
    """Where a script version stands."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    RETIRED = "retired"


class Action(StrEnum):
    """What a manager can do to a script."""

    SUBMIT = "submit"
    APPROVE = "approve"
    RETURN = "return"
    RETIRE = "retire"
    EDIT = "edit"
    PUSH = "push"


#: action -> (states it may start from, state it leads to; None = unchanged)
TRANSITIONS: dict[Action, tuple[frozenset[State], State | None]] = {
    Action.SUBMIT: (frozenset({State.DRAFT}), State.IN_REVIEW),
    Action.APPROVE: (frozenset({State.IN_REVIEW}), State.APPROVED),
    Action.RETURN: (frozenset({State.IN_REVIEW}), State.DRAFT),
    Action.RETIRE: (frozenset({State.DRAFT, State.IN_REVIEW, State.APPROVED}), State.RETIRED),
    Action.EDIT: (frozenset({State.DRAFT, State.IN_REVIEW, State.APPROVED}), State.DRAFT),
}


class ScriptRuleError(Exception):
    """A rule refused the action; ``code`` is machine-readable."""

    code = "rule"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class IllegalTransition(ScriptRuleError):
    """The action is not possible from the current state."""

    code = "illegal_transition"

    def __init__(self, action: str, state: str):
        super().__init__(f"Cannot {action} a script that is {state.replace('_', ' ')} (state: {state}).")
        self.action = action
        self.state = state


class TwoPersonRule(ScriptRuleError):
    """An author tried to approve their own version."""

    code = "two_person_rule"


class UnfilledPlaceholders(ScriptRuleError):
    """Placeholders such as ``{{ hotline }}`` are still in the text."""

    code = "unfilled_placeholders"

    def __init__(self, names: list[str]):
        listed = ", ".join("{{ " + name + " }}" for name in names)
        super().__init__(f"Fill in every placeholder before submitting: {listed}.")
        self.names = names


class NotLive(ScriptRuleError):
    """Only an approved, unexpired version can be pushed."""

    code = "not_approved"


@dataclass(frozen=True)
class Outcome:
    """What an allowed action leads to."""

    state: State
    new_version: bool = False


def transition(
    action: Action | str,
    state: State | str,
    *,
    actor: str,
    authors: Iterable[str] = (),
    title: str = "",
    body: str = "",
) -> Outcome:
    """Return the outcome of ``action`` by ``actor``, or raise why it is refused.

    Args:
        authors: everyone who wrote the version under consideration.
        title, body: the version's text (checked for unfilled placeholders on submit).
    """
    action = Action(action)
    state = State(state)
    if action is Action.PUSH:
        if state is not State.APPROVED:
            raise NotLive(
                f"Only approved scripts can be pushed; this one is {state.value.replace('_', ' ')}."
            )
        return Outcome(state)
    allowed_from, target = TRANSITIONS[action]
    if state not in allowed_from:
        raise IllegalTransition(action.value, state.value)
    if action is Action.APPROVE and actor in set(authors):
        raise TwoPersonRule(
            "You wrote or edited this version; another manager must approve it (two-person rule)."
        )
    if action is Action.SUBMIT:
        missing = unfilled(title + "\n" + body)
        if missing:
            raise UnfilledPlaceholders(missing)
    assert target is not None
    return Outcome(target, new_version=action is Action.EDIT and state is State.APPROVED)
