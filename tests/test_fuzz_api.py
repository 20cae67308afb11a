"""The JSON API, fuzzed from its own OpenAPI document: no 5xx, and nothing outside the document.

Schemathesis generates requests for every operation of ``/api/v1/openapi.json`` — valid ones
and deliberately wrong ones — and sends each with a manager's token and an admin's. Every
answer must be a documented status code with the documented content type and body schema,
and none may be a server error. Generation is derandomised (the same cases every run, so the
test cannot fail by chance) and bounded, so the file stays well under a minute and a half.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.config import HealthCheck
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crisis_console.api.openapi import DOCUMENT
from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from tests.helpers import PASSWORD, unique_name

#: Examples per operation in the fuzzing phase, on top of the coverage phase's own cases: enough
#: to reach the documented errors of every operation while the file stays well under 90 s.
#: ``FUZZ_MAX_EXAMPLES`` asks for a deeper (still derandomised) run by hand.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLES = (Role.MANAGER, Role.ADMIN)


@pytest.fixture(scope="module")
def fuzz_app(redis_url: str, run_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One console app for the whole file, on the test Redis under its own key prefix."""
    folder = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRISIS_INSTANCE_PATH", str(folder / "instance"))
        yield create_app(
            TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=f"{run_prefix}:fuzz", SEED_CATALOGUE=True)
        )


class Callers:
    """A manager and an admin with API tokens, made again if a fuzzed request disabled or
    demoted one (``PATCH /users/{id}`` may hit them: that is allowed, and must not end the run)."""

    def __init__(self, app: Flask):
        self.accounts = Accounts(app.extensions[STORE_EXTENSION])
        self.tokens: dict[str, str] = {}

    def token(self, role: str) -> str:
        """Return a working token of a user with ``role``."""
        token = self.tokens.get(role)
        user = self.accounts.user_for_token(token) if token else None
        if user is None or user.role != role:
            user = self.accounts.create_user(unique_name(role), role, PASSWORD, actor="test")
            token = self.tokens[role] = self.accounts.create_token(user.username, "fuzz", actor="test")
        return token


@pytest.fixture(scope="module")
def callers(fuzz_app: Flask) -> Callers:
    """The tokens the fuzzed requests are sent with."""
    return Callers(fuzz_app)


# The document is loaded at import, as a dict, so that each operation is its own test: the
# lazy loader (``schemathesis.pytest.from_fixture``) renames test items through an attribute
# this pytest no longer has. test_the_fuzzed_document_is_the_one_the_app_serves below checks
# that it is exactly what the app publishes; requests go to the in-process app (``app=``).
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
# Hypothesis's health checks time data generation: on a slow machine they could fail a run
# that found nothing, which a derandomised test must never do.
schema.config.update(suppress_health_check=[HealthCheck.all])


@schema.parametrize()
def test_every_operation_answers_within_its_document(
    case: schemathesis.Case, fuzz_app: Flask, callers: Callers
) -> None:
    """Each generated request, as a manager and as an admin, gets a documented, non-5xx answer."""
    for role in ROLES:
        case.call_and_validate(
            app=fuzz_app, headers={"Authorization": f"Bearer {callers.token(role)}"}, checks=CHECKS
        )


def test_the_fuzzed_document_is_the_one_the_app_serves(fuzz_app: Flask) -> None:
    """Schemathesis reads the document the app publishes at /api/v1/openapi.json."""
    assert fuzz_app.test_client().get("/api/v1/openapi.json").json == json.loads(json.dumps(DOCUMENT))


def test_every_api_route_is_in_the_document_so_it_is_fuzzed(fuzz_app: Flask) -> None:
    """A new /api/v1 route cannot escape the fuzzing by being left out of the document."""
    documented = {
        (method.upper(), re.sub(r"\{\w+\}", "{}", path))
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method != "parameters"
    }
    missing = []
    for rule in fuzz_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "api.openapi":
            continue
        # <any(submit, approve):action> stands for one documented path per choice.
        choices = re.search(r"<any\(([^)]*)\):\w+>", rule.rule)
        rules = (
            [re.sub(r"<any\([^)]*\):\w+>", c.strip(), rule.rule) for c in choices[1].split(",")]
            if choices
            else [rule.rule]
        )
        for concrete in rules:
            path = re.sub(r"<(?:\w+:)?\w+>", "{}", concrete.removeprefix("/api/v1"))
            missing += [
                (m, path) for m in sorted(rule.methods - {"HEAD", "OPTIONS"}) if (m, path) not in documented
            ]
    assert missing == []
