"""Render deploy/nginx/crisis-console.conf for this install and print it (or write it with -o).

    python deploy/render.py --web 127.0.0.1:5001 --web 127.0.0.1:5002 \\
        --webhooks 127.0.0.1:5100 --server-name console.example.org \\
        -o /etc/nginx/conf.d/crisis-console.conf

The static folder defaults to the installed package's own (``crisis_console/static``), so
nginx serves exactly the files of the version that runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "crisis-console.conf"
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def installed_static_root() -> str:
    """Return the static folder of the installed crisis_console package."""
    import crisis_console

    return str(Path(crisis_console.__file__).resolve().parent / "static")


def render(
    web: list[str],
    webhooks: list[str],
    *,
    listen: str = "80",
    static_root: str | None = None,
    cache_path: str = "/var/cache/nginx/crisis-console",
    server_name: str = "_",
    template: Path = TEMPLATE,
) -> str:
    """Return the nginx configuration with every placeholder filled.

    Raises:
        ValueError: no web process or webhooks service was given, or the template names a
            placeholder this function does not know.
    """
    if not web or not webhooks:
        raise ValueError("give at least one web process (--web) and one webhooks service (--webhooks)")
    values = {
        # A process that fails is skipped for a few seconds, then tried again.
        "WEB_UPSTREAMS": "\n".join(f"    server {address} max_fails=1 fail_timeout=5s;" for address in web),
        "WEBHOOKS": "\n".join(f"    server {address} max_fails=1 fail_timeout=5s;" for address in webhooks),
        "LISTEN": listen,
        "STATIC_ROOT": (static_root or installed_static_root()).rstrip("/"),
        "CACHE_PATH": cache_path,
        "SERVER_NAME": server_name,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"{template}: unknown placeholder {{{{{name}}}}}")
        return values[name]

    return PLACEHOLDER.sub(fill, template.read_text())


def main(argv: list[str] | None = None) -> int:
    """Render the configuration from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--web", action="append", default=[], help="host:port of a web process (repeat)")
    parser.add_argument("--webhooks", action="append", default=[], help="host:port of the webhooks service")
    parser.add_argument("--listen", default="80", help="nginx's listen address (default 80)")
    parser.add_argument("--static-root", help="the static folder (default: the installed package's)")
    parser.add_argument("--cache-path", default="/var/cache/nginx/crisis-console", help="public page cache")
    parser.add_argument("--server-name", default="_", help="server_name (default _)")
    parser.add_argument("-o", "--output", help="write here instead of printing")
    args = parser.parse_args(argv)
    try:
        text = render(
            args.web,
            args.webhooks,
            listen=args.listen,
            static_root=args.static_root,
            cache_path=args.cache_path,
            server_name=args.server_name,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
