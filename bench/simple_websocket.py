"""``python -m crisis_console`` as if gevent-websocket were not installed.

python-engineio then serves websockets with simple-websocket (its fallback under gevent), so
bench/push.py can measure the two libraries on the same code:

    python -m bench.simple_websocket serve --port 5001
"""

from __future__ import annotations

import sys

# A None entry makes ``import geventwebsocket`` raise ImportError, as when it is absent.
sys.modules["geventwebsocket"] = None  # type: ignore[assignment]

from crisis_console.__main__ import main  # noqa: E402

if __name__ == "__main__":
    main()
