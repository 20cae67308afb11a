"""The script domain: states, transitions and the two-person rule, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts_library import model
from scripts_library.model import Action, State


def test_happy_path_draft_to_retired():
    """draft → in_review → approved → retired."""
    assert model.transition(Action.SUBMIT, State.DRAFT, actor="ann").state is State.IN_REVIEW
    assert (
        model.transition(Action.APPROVE, State.IN_REVIEW, actor="bob", authors=["ann"]).state
        is State.APPROVED
    )
    assert model.transition(Action.RETIRE, State.APPROVED, actor="ann").state is State.RETIRED


def test_author_cannot_approve():
    """Whoever wrote or edited the version cannot approve it."""
    with pytest.raises(model.TwoPersonRule):
        model.transition(Action.APPROVE, State.IN_REVIEW, actor="ann", authors=["ann"])
    with pytest.raises(model.TwoPersonRule):
        model.transition(Action.APPROVE, State.IN_REVIEW, actor="bob", authors=["ann", "bob"])


def test_illegal_transitions_name_the_state():
    """Approving a draft or submitting a retired script is refused, naming the state."""
    with pytest.raises(model.IllegalTransition) as caught:
        model.transition(Action.APPROVE, State.DRAFT, actor="bob", authors=["ann"])
    assert caught.value.state == "draft" and "state: draft" in caught.value.message
    with pytest.raises(model.IllegalTransition):
        model.transition(Action.SUBMIT, State.RETIRED, actor="ann")
    with pytest.raises(model.IllegalTransition):
        model.transition(Action.EDIT, State.RETIRED, actor="ann")


def test_editing_an_approved_script_starts_a_new_draft_version():
    """Approved + edit → a new draft version; a draft edit stays the same version."""
    assert model.transition(Action.EDIT, State.APPROVED, actor="ann") == model.Outcome(
        State.DRAFT, new_version=True
    )
    assert model.transition(Action.EDIT, State.DRAFT, actor="ann") == model.Outcome(
        State.DRAFT, new_version=False
    )
    assert model.transition(Action.EDIT, State.IN_REVIEW, actor="bob").state is State.DRAFT


def test_unfilled_placeholders_block_submission():
    """A template placeholder left in the text names itself."""
    with pytest.raises(model.UnfilledPlaceholders) as caught:
        model.transition(
            Action.SUBMIT, State.DRAFT, actor="ann", title="Storm", body="Call {{ hotline }} now"
        )
    assert caught.value.names == ["hotline"]
    assert "{{ hotline }}" in caught.value.message


def test_only_approved_scripts_can_be_pushed():
    """Pushing a draft or a script in review is refused."""
    for state in (State.DRAFT, State.IN_REVIEW, State.RETIRED):
        with pytest.raises(model.NotLive):
            model.transition(Action.PUSH, state, actor="ann")
    assert model.transition(Action.PUSH, State.APPROVED, actor="ann").state is State.APPROVED


MANAGERS = ["ann", "bob", "cat"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.sampled_from(MANAGERS)), max_size=40))
def test_no_sequence_lets_an_author_approve_or_pushes_unapproved(steps):
    """Over random sequences of actions, an approval never comes from an author of the
    version, and a push only ever happens while the script is approved."""
    state, authors = State.DRAFT, {"ann"}
    for action, actor in steps:
        try:
            outcome = model.transition(action, state, actor=actor, authors=authors, title="t", body="b")
        except model.ScriptRuleError:
            continue
        if action is Action.APPROVE:
            assert actor not in authors
        if action is Action.PUSH:
            assert state is State.APPROVED
        if action is Action.EDIT:
            authors = {actor} if outcome.new_version else authors | {actor}
        state = outcome.state
