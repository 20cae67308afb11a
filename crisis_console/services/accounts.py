"""Accounts: users, roles, passwords, API tokens and the first admin.

Passwords are hashed with Werkzeug's scrypt; API tokens are long random strings of which
only the SHA-256 is stored (a fast hash is right for 256-bit random secrets). A user's
``session_epoch`` is part of their session id, so bumping it ends every session at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from crisis_console import clock
from crisis_console.roles import ROLES, Role
from crisis_console.services import audit
from crisis_console.services.errors import Conflict, NotFound, ValidationError
from crisis_console.store import Store
from crisis_console.store.users import DuplicateName
from scripts_library import languages

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
TEAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
TOKEN_PREFIX = "cc_"
#: What a token is for. ``api``: a bearer token for the JSON API, sockets and the CAP inbox.
#: ``open311``: an Open311 ``api_key`` and nothing else, so the key a city app or vendor holds
#: cannot act as its user on the console's API, and no API token is an Open311 key.
API_SCOPE, OPEN311_SCOPE = "api", "open311"
TOKEN_SCOPES = (API_SCOPE, OPEN311_SCOPE)

# Checked against when the username is unknown, so a wrong name costs as long as a wrong
# password and response times do not reveal which names exist.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


@dataclass(frozen=True)
class User:
    """A console user as the web layer sees it (Flask-Login reads the properties)."""

    id: int
    username: str
    display_name: str
    role: str
    team: str
    active: bool
    session_epoch: int
    created_at: str
    #: Where alerts reach the user: an E.164 phone number for SMS, an e-mail address.
    phone: str = ""
    email: str = ""
    #: The language the user reads scripts in first (agents see that version of a script).
    language: str = languages.DEFAULT
    #: The server-side session this user object was loaded for ('' outside a session).
    session_key: str = ""

    @property
    def is_authenticated(self) -> bool:
        """Return True: a loaded user is signed in (Flask-Login protocol)."""
        return True

    @property
    def is_active(self) -> bool:
        """Return whether the account is enabled (Flask-Login protocol)."""
        return self.active

    @property
    def is_anonymous(self) -> bool:
        """Return False: this is a real user (Flask-Login protocol)."""
        return False

    def get_id(self) -> str:
        """Return the session id: user id, session epoch and session key (Flask-Login protocol)."""
        return f"{self.id}:{self.session_epoch}:{self.session_key}"

    def has_role(self, *roles: str) -> bool:
        """Return whether the user holds one of ``roles``."""
        return self.role in roles

    def public(self) -> dict[str, object]:
        """Return the fields safe to show in the API and pages."""
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "team": self.team or None,
            "active": self.active,
            "created_at": self.created_at,
            "phone": self.phone or None,
            "email": self.email or None,
            "language": self.language,
        }


def _from_fields(fields: dict[str, str]) -> User:
    return User(
        id=int(fields["id"]),
        username=fields["username"],
        display_name=fields.get("display_name") or fields["username"],
        role=fields["role"],
        team=fields.get("team", ""),
        active=fields.get("active", "1") == "1",
        session_epoch=int(fields.get("session_epoch", "0")),
        created_at=fields.get("created_at", ""),
        phone=fields.get("phone", ""),
        email=fields.get("email", ""),
        language=fields.get("language") or languages.DEFAULT,
    )


class Accounts:
    """The account rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    # --- validation ----------------------------------------------------------------

    @staticmethod
    def clean_username(username: object) -> str:
        """Return the normalised username or raise ValidationError on ``username``."""
        name = str(username or "").strip().lower()
        if not USERNAME_RE.match(name):
            raise ValidationError(
                "Username must be 2–40 characters: lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit.",
                field="username",
            )
        return name

    @staticmethod
    def clean_role(role: object) -> str:
        """Return the role or raise ValidationError on ``role``."""
        value = str(role or "").strip().lower()
        if value not in ROLES:
            raise ValidationError(f"Role must be one of: {', '.join(ROLES)}.", field="role")
        return value

    @staticmethod
    def clean_team(team: object) -> str:
        """Return the team name ('' for none) or raise ValidationError on ``team``."""
        value = str(team or "").strip()
        if value and not TEAM_RE.match(value):
            raise ValidationError(
                "Team must be up to 40 letters, digits, spaces, '.', '_' or '-'.", field="team"
            )
        return value

    @staticmethod
    def clean_contact(phone: object, email: object) -> dict[str, str]:
        """Return ``{phone, email}`` checked (either may be empty), or raise naming the field."""
        phone_value = re.sub(r"[\s().-]", "", str(phone or ""))
        if phone_value and not re.fullmatch(r"\+[1-9]\d{6,14}", phone_value):
            raise ValidationError("phone must be an international number like +16175550100.", field="phone")
        email_value = str(email or "").strip()
        if email_value and (
            len(email_value) > 254 or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email_value)
        ):
            raise ValidationError("email must be an e-mail address.", field="email")
        return {"phone": phone_value, "email": email_value}

    @staticmethod
    def clean_language(language: object) -> str:
        """Return a language code such as "es" or raise ValidationError on ``language``."""
        value = str(language or "").strip()
        if not LANGUAGE_RE.match(value):
            raise ValidationError('language must be a language code such as "en" or "es".', field="language")
        return value

    @staticmethod
    def check_password(password: object) -> str:
        """Return the password or raise ValidationError on ``password``."""
        if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
            raise ValidationError(
                f"Password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
                field="password",
            )
        return password

    # --- users ---------------------------------------------------------------------

    def create_user(
        self,
        username: object,
        role: object,
        password: object,
        *,
        team: object = "",
        display_name: object = "",
        phone: object = "",
        email: object = "",
        actor: str | None = None,
    ) -> User:
        """Create a user; raise ValidationError or Conflict (username taken)."""
        name = self.clean_username(username)
        role_value = self.clean_role(role)
        team_value = self.clean_team(team)
        contact = self.clean_contact(phone, email)
        secret = self.check_password(password)
        shown = str(display_name or "").strip()[:80] or name
        fields = {
            "username": name,
            "display_name": shown,
            "role": role_value,
            "team": team_value,
            "password_hash": generate_password_hash(secret),
            "active": "1",
            "session_epoch": "0",
            "created_at": clock.iso(),
            **contact,
        }
        entry = audit.entry(actor, "user.created", "user", username=name, role=role_value, team=team_value)
        try:
            user_id = self.store.users.create(fields, entry)
        except DuplicateName:
            raise Conflict(
                f"A user named {name!r} already exists.", field="username", code="username_taken"
            ) from None
        return _from_fields({**fields, "id": str(user_id)})

    def create_from(self, fields: Mapping[str, Any], *, actor: str | None) -> User:
        """Create a user from submitted fields (a form or a JSON body)."""
        return self.create_user(
            fields.get("username"),
            fields.get("role"),
            fields.get("password"),
            team=fields.get("team"),
            display_name=fields.get("display_name"),
            phone=fields.get("phone"),
            email=fields.get("email"),
            actor=actor,
        )

    def get(self, user_id: int | str) -> User | None:
        """Return the user with this id, or None."""
        fields = self.store.users.get(user_id)
        return _from_fields(fields) if fields else None

    def require(self, user_id: int | str) -> User:
        """Return the user with this id or raise NotFound."""
        user = self.get(user_id)
        if user is None:
            raise NotFound(f"No user with id {user_id}.", field="user_id")
        return user

    def by_name(self, username: str) -> User | None:
        """Return the user with this (case-insensitive) username, or None."""
        user_id = self.store.users.id_for_name(username.strip())
        return self.get(user_id) if user_id else None

    def start_session(self, user: User) -> User:
        """Open a server-side session for a signed-in user; return the user bound to it."""
        return replace(user, session_key=self.store.sessions.create(user.id))

    def end_session(self, user: User) -> None:
        """End the session a user object was loaded for (a copied cookie then stops working)."""
        if user.session_key:
            self.store.sessions.end(user.session_key)

    def from_session_id(self, session_id: str) -> User | None:
        """Return the active user of a session id, or None if the session was ended.

        A session ends when signed out, when it expires unused, and for every session
        of a user at once when their epoch moves on (disabled, password reset, new role).
        """
        user_id, epoch, session_key = [*session_id.split(":"), "", ""][:3]
        if not user_id.isdigit() or not session_key:
            return None
        if self.store.sessions.user_id(session_key) != user_id:
            return None
        user = self.get(user_id)
        if user is None or not user.active or str(user.session_epoch) != epoch:
            return None
        return replace(user, session_key=session_key)

    def all(self) -> list[User]:
        """Return every user, oldest first."""
        return [_from_fields(fields) for fields in self.store.users.all()]

    def count(self) -> int:
        """Return the number of users."""
        return self.store.users.count()

    def authenticate(self, username: object, password: object) -> User | None:
        """Return the active user with these credentials, or None."""
        name = str(username or "").strip().lower()
        secret = password if isinstance(password, str) else ""
        fields = self.store.users.get(self.store.users.id_for_name(name) or "0") if name else None
        if not fields:
            check_password_hash(_DUMMY_HASH, secret)
            return None
        if not check_password_hash(fields.get("password_hash", _DUMMY_HASH), secret):
            return None
        user = _from_fields(fields)
        return user if user.active else None

    def set_active(self, user_id: int | str, active: bool, *, actor: str | None) -> User:
        """Enable or disable a user; disabling ends their sessions at once."""
        user = self.require(user_id)
        if actor and str(user.id) == str(self._actor_id(actor)) and not active:
            raise Conflict("You cannot disable your own account.", field="active", code="self_disable")
        action = "user.enabled" if active else "user.disabled"
        entry = audit.entry(actor, action, f"user:{user.id}", username=user.username)
        self.store.users.update(user.id, {"active": "1" if active else "0"}, entry, end_sessions=not active)
        return self.require(user.id)

    def reset_password(self, user_id: int | str, password: object, *, actor: str | None) -> User:
        """Set a new password and end the user's existing sessions."""
        user = self.require(user_id)
        secret = self.check_password(password)
        entry = audit.entry(actor, "user.password_reset", f"user:{user.id}", username=user.username)
        self.store.users.update(
            user.id, {"password_hash": generate_password_hash(secret)}, entry, end_sessions=True
        )
        return self.require(user.id)

    def change_own_password(self, user: User, current: object, new: object, confirm: object) -> User:
        """Change a user's own password after checking the current one; end all their sessions.

        The caller signs the user in again on the session they are using; every other
        session of theirs (another browser, a copied cookie) stops working at once.
        """
        fields = self.store.users.get(user.id) or {}
        secret = current if isinstance(current, str) else ""
        if not check_password_hash(fields.get("password_hash", _DUMMY_HASH), secret):
            raise ValidationError("That is not your current password.", field="current_password")
        if not isinstance(new, str) or not (MIN_PASSWORD <= len(new) <= MAX_PASSWORD):
            raise ValidationError(
                f"The new password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
                field="new_password",
            )
        if new == secret:
            raise ValidationError("The new password must differ from the current one.", field="new_password")
        if confirm != new:
            raise ValidationError("The two new passwords differ.", field="confirm_password")
        entry = audit.entry(user.username, "user.password_changed", f"user:{user.id}", username=user.username)
        self.store.users.update(
            user.id, {"password_hash": generate_password_hash(new)}, entry, end_sessions=True
        )
        return self.require(user.id)

    def set_role_and_team(self, user_id: int | str, role: object, team: object, *, actor: str | None) -> User:
        """Change a user's role and team; a role change ends their sessions."""
        user = self.require(user_id)
        role_value = self.clean_role(role)
        team_value = self.clean_team(team)
        if actor and str(user.id) == str(self._actor_id(actor)) and role_value != user.role:
            raise Conflict("You cannot change your own role.", field="role", code="self_role_change")
        entry = audit.entry(
            actor,
            "user.updated",
            f"user:{user.id}",
            username=user.username,
            role=[user.role, role_value],
            team=[user.team, team_value],
        )
        self.store.users.update(
            user.id,
            {"role": role_value, "team": team_value},
            entry,
            end_sessions=role_value != user.role,
        )
        return self.require(user.id)

    def set_contact(self, user_id: int | str, phone: object, email: object, *, actor: str | None) -> User:
        """Change where alerts reach a user (phone for SMS, e-mail)."""
        user = self.require(user_id)
        contact = self.clean_contact(phone, email)
        entry = audit.entry(actor, "user.contact_changed", f"user:{user.id}", username=user.username)
        self.store.users.update(user.id, contact, entry, end_sessions=False)
        return self.require(user.id)

    def set_language(self, user_id: int | str, language: object, *, actor: str | None) -> User:
        """Set the language a user reads scripts in first."""
        user = self.require(user_id)
        value = self.clean_language(language)
        entry = audit.entry(
            actor, "user.language_changed", f"user:{user.id}", username=user.username, language=value
        )
        self.store.users.update(user.id, {"language": value}, entry, end_sessions=False)
        return self.require(user.id)

    def _actor_id(self, actor: str) -> str | None:
        return self.store.users.id_for_name(actor)

    def ensure_first_admin(self) -> tuple[str, str] | None:
        """Create an ``admin`` with a random password when no user exists yet.

        Returns:
            (username, password) when an admin was created, else None.
        """
        if self.count():
            return None
        password = secrets.token_urlsafe(12)
        try:
            self.create_user("admin", Role.ADMIN, password, display_name="Administrator")
        except Conflict:
            return None  # another process created it first
        return "admin", password

    # --- API tokens ------------------------------------------------------------------

    def create_token(
        self, username: str, name: str = "", *, actor: str | None = None, scope: str = API_SCOPE
    ) -> str:
        """Create a token for a user and return it; only its hash is stored.

        ``scope`` is what it is for (TOKEN_SCOPES): ``open311`` makes an Open311 ``api_key``.
        """
        user = self.by_name(username)
        if user is None:
            raise NotFound(f"No user named {username!r}.", field="username")
        if scope not in TOKEN_SCOPES:
            raise ValidationError(f"scope must be one of: {', '.join(TOKEN_SCOPES)}.", field="scope")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        default = "Open311 key" if scope == OPEN311_SCOPE else "API token"
        label = str(name or "").strip()[:80] or default
        token_hash = hash_token(token)
        entry = audit.entry(
            actor,
            "token.created",
            f"user:{user.id}",
            username=user.username,
            name=label,
            scope=scope,
            token_id=token_hash[:12],
        )
        self.store.tokens.add(token_hash, user.id, label, entry, scope=scope)
        return token

    def user_for_token(self, token: str, scope: str = API_SCOPE) -> User | None:
        """Return the active user a token of ``scope`` belongs to, or None (also for another scope)."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        token_hash = hash_token(token)
        found = self.store.tokens.get_with_user(token_hash)
        if not found:
            return None
        fields, user_fields = found
        if fields.get("scope", API_SCOPE) != scope:
            return None
        user = _from_fields(user_fields) if user_fields else None
        if user is None or not user.active:
            return None
        if _stale(fields.get("last_used_at", "")):
            self.store.tokens.touch(token_hash)
        return user

    def tokens(self, user_id: int | str) -> list[dict[str, str]]:
        """Return a user's tokens (never the secret)."""
        return self.store.tokens.for_user(user_id)

    def revoke_token(self, user_id: int | str, token_id: str, *, actor: str | None) -> None:
        """Revoke one of a user's tokens by its short id; raise NotFound when unknown."""
        user = self.require(user_id)
        entry = audit.entry(
            actor, "token.revoked", f"user:{user.id}", username=user.username, token_id=token_id
        )
        if not token_id or not self.store.tokens.revoke(user.id, token_id, entry):
            raise NotFound("No such token.", field="token_id")


#: How old a token's "last used" time may get before it is written again (saves a Redis
#: write on every API call of a busy integration).
TOUCH_AFTER_SECONDS = 60


def _stale(last_used_at: str) -> bool:
    """Return whether a token's last-used time is missing or older than TOUCH_AFTER_SECONDS."""
    if not last_used_at:
        return True
    try:
        return (clock.now() - clock.parse_iso(last_used_at)).total_seconds() > TOUCH_AFTER_SECONDS
    except ValueError:
        return True


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()
