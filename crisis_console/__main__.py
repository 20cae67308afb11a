"""``python -m crisis_console COMMAND`` (also installed as ``crisis-console``).

``serve`` needs gevent's monkey-patching before anything imports the standard library's
networking, so it is applied here, before the CLI module (and Flask, redis-py) is imported.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line."""
    # The webhooks-only service runs under gunicorn's threads: no monkey-patching there.
    if len(sys.argv) > 1 and sys.argv[1] == "serve" and "--only" not in sys.argv:
        from gevent import monkey

        monkey.patch_all()
    from crisis_console.cli import cli
    from crisis_console.config import SettingError

    try:
        cli(prog_name="crisis-console")
    except SettingError as exc:  # one line naming the setting, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
