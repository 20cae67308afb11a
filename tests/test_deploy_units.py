"""The systemd units and the env file in deploy/: real commands, the settings the app reads."""

from __future__ import annotations

import configparser
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from crisis_console.cli import cli
from crisis_console.config import ENV_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
ENV_EXAMPLE = ROOT / "deploy" / "crisis-console.env.example"
SERVICES = sorted(UNITS.glob("*.service"))
INSTALLED = "/opt/crisis-console/venv/bin/crisis-console"
#: Settings the app reads outside config.Config, and the ProxyFix hop count set up beside it.
OTHER_SETTINGS = {"CRISIS_INSTANCE_PATH", "CRISIS_PROXY_HOPS", "PORT"}


def unit(path: Path) -> configparser.ConfigParser:
    """Parse a unit file (repeated keys such as Wants= are kept as the last one)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def command_line(path: Path) -> list[str]:
    """Return a service's ExecStart arguments after the program, for instance port 5001."""
    argv = shlex.split(unit(path)["Service"]["ExecStart"].replace("%i", "5001"))
    assert argv[0] == INSTALLED, f"{path.name}: ExecStart runs {argv[0]}"
    return argv[1:]


def test_the_three_services_are_there():
    """Web (one per port), webhooks and worker, and a target that starts them together."""
    assert [path.name for path in SERVICES] == [
        "crisis-console-web@.service",
        "crisis-console-webhooks.service",
        "crisis-console-worker.service",
    ]
    assert (UNITS / "crisis-console.target").is_file()


@pytest.mark.parametrize("path", SERVICES, ids=lambda path: path.name)
def test_a_service_restarts_runs_as_its_own_user_and_is_hardened(path: Path):
    """Restart=always, a dedicated user, no new privileges, a read-only system but the state folder."""
    service = unit(path)["Service"]
    assert service["Restart"] == "always"
    assert service["User"] == service["Group"] == "crisis-console"
    assert service["EnvironmentFile"] == "/etc/crisis-console/crisis-console.env"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/crisis-console"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 10
    assert unit(path)["Install"]["WantedBy"] == "crisis-console.target"


def test_the_instance_folder_is_inside_the_writable_path():
    """CRISIS_INSTANCE_PATH (secret key, IVR state, SMS spool) is under ReadWritePaths."""
    example = env_example()
    assert example["CRISIS_INSTANCE_PATH"].startswith("/var/lib/crisis-console/")


@pytest.mark.parametrize("path", SERVICES, ids=lambda path: path.name)
def test_execstart_is_a_command_the_cli_accepts(path: Path):
    """Each ExecStart names a real command with options the CLI parses (types and choices too)."""
    name, *rest = command_line(path)  # the group itself takes no options
    group = click.Context(cli, info_name="crisis-console")
    command = cli.get_command(group, name)
    assert command is not None, f"{path.name}: no command {name!r}"
    command.make_context(name, rest, parent=group)  # raises on an unknown option or a bad value


@pytest.mark.parametrize("name", ["serve", "worker"])
def test_the_units_commands_answer_help(name: str):
    """``crisis-console serve --help`` and ``worker --help`` run in a fresh process."""
    used = {command_line(path)[0] for path in SERVICES}
    assert name in used
    done = subprocess.run(
        [sys.executable, "-m", "crisis_console", name, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_web_instances_take_their_port_from_the_instance_name():
    """crisis-console-web@5001 listens on 5001, on the loopback only (nginx is the way in)."""
    args = command_line(UNITS / "crisis-console-web@.service")
    assert args[:1] == ["serve"] and "--only" not in args
    assert args[args.index("--port") + 1] == "5001"
    assert args[args.index("--host") + 1] == "127.0.0.1"


def test_webhooks_reload_is_gunicorns_graceful_hup():
    """systemctl reload sends HUP to gunicorn's master (new workers, none of the calls dropped)."""
    service = unit(UNITS / "crisis-console-webhooks.service")["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    args = command_line(UNITS / "crisis-console-webhooks.service")
    assert args[:3] == ["serve", "--only", "webhooks"]


def env_example() -> dict[str, str]:
    """Return the example env file's settings, commented-out ones included."""
    settings = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"#?([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match:
            settings[match.group(1)] = match.group(2)
    return settings


def test_env_example_names_only_settings_the_app_reads():
    """Every name in the example is read by the app, and every documented setting is there."""
    source = (ROOT / "crisis_console" / "config.py").read_text()
    read = set(re.findall(r'(?:env\.get\(|whole_number\(env, )"([A-Z0-9_]+)"', source)) | OTHER_SETTINGS
    names = set(env_example())
    assert names <= read, f"not settings of the app: {sorted(names - read)}"
    assert set(ENV_SETTINGS) <= names, f"missing: {sorted(set(ENV_SETTINGS) - names)}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path):
    """systemd's own check of the units, with ExecStart pointed at this checkout's crisis-console."""
    program = Path(sys.executable).with_name("crisis-console")
    if not program.is_file():
        pytest.skip(f"no {program} to stand in for {INSTALLED}")
    for path in [*SERVICES, UNITS / "crisis-console.target"]:
        (tmp_path / path.name).write_text(path.read_text().replace(INSTALLED, str(program)))
    names = ["crisis-console-web@5001.service", *(p.name for p in SERVICES[1:]), "crisis-console.target"]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"./{name}" for name in names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def renderer():
    """Import deploy/render.py (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("deploy_render", ROOT / "deploy" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_nginx_template_renders_every_placeholder():
    """Both web processes, the webhooks service and the paths land in the file; nothing is left open."""
    text = renderer().render(["127.0.0.1:5001", "127.0.0.1:5002"], ["127.0.0.1:5100"], listen="8080")
    assert "{{" not in text and "}}" not in text
    assert "server 127.0.0.1:5001 " in text and "server 127.0.0.1:5002 " in text
    assert "server 127.0.0.1:5100 " in text and "listen 8080;" in text
    assert f"alias {ROOT / 'crisis_console' / 'static'}/;" in text  # the installed package's folder
    assert "# server {\n#     listen 443 ssl" in text  # the TLS server, ready to fill in


def test_the_renderer_refuses_a_deployment_without_web_or_webhooks():
    """No web process or no webhooks service is an error, not a config that answers 502."""
    render = renderer().render
    with pytest.raises(ValueError, match="--web"):
        render([], ["127.0.0.1:5100"])
    with pytest.raises(ValueError, match="--webhooks"):
        render(["127.0.0.1:5001"], [])
