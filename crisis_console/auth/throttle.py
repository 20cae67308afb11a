"""Sign-in throttles: failed attempts counted per client address and per username.

Only failures count, so a whole contact-centre floor signing in from one address at the
start of a shift is never locked out, while guessing is slowed for any one account. The
form and the JSON sign-in share the counters.
"""

from __future__ import annotations

from flask import Response, current_app, request

from crisis_console.extensions import limiter


def _failed(response: Response) -> bool:
    """Count a sign-in attempt only when it was refused."""
    return response.status_code == 401


def _username_key() -> str:
    """Key the per-user limit by the lower-cased username that was tried."""
    from crisis_console.api.body import json_object_or_none  # the API's one safe JSON reader

    name = request.form.get("username")
    if name is None and request.is_json:
        body = json_object_or_none()
        name = body.get("username") if isinstance(body, dict) else None
    # The key is written to Redis: a name that is not valid UTF-8 must not break the write.
    key = str(name or "").strip().lower()[:80]
    return "user:" + key.encode("utf-8", "backslashreplace").decode("utf-8")


per_ip = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"],
    scope="login-ip",
    methods=["POST"],
    deduct_when=_failed,
)
per_user = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USER"],
    scope="login-user",
    key_func=_username_key,
    methods=["POST"],
    deduct_when=_failed,
)
