"""Socket.IO: connections are authenticated and role-checked at connect, and end with the session."""

from __future__ import annotations

import threading
import time

import pytest
import socketio

from crisis_console.extensions import socketio as server_socketio
from crisis_console.roles import NAMESPACE_ROLES, Role
from crisis_console.sockets import names
from tests.helpers import PASSWORD

# --- in-process, with Flask-SocketIO's test client ------------------------------------


def test_test_client_without_credentials_is_refused(app):
    """No cookie and no token: the namespace refuses the connection."""
    client = server_socketio.test_client(app, namespace=names.AGENT, flask_test_client=app.test_client())
    assert not client.is_connected(names.AGENT)


def test_test_client_with_session_cookie_is_welcomed(app, auth, client):
    """A signed-in agent's cookie connects to /agent and is greeted with who they are."""
    user = auth.login_as(Role.AGENT, team="North")
    sio = server_socketio.test_client(app, namespace=names.AGENT, flask_test_client=client)
    assert sio.is_connected(names.AGENT)
    received = sio.get_received(names.AGENT)
    welcome = [m for m in received if m["name"] == names.SESSION_WELCOME]
    assert welcome[0]["args"][0]["user"]["username"] == user.username
    sio.disconnect(namespace=names.AGENT)


def test_one_process_counts_the_connected_agents_a_push_was_sent_to(app, auth, client, store):
    """Without a message queue the process delivers every push itself, and adds how many
    agent sockets it sent it to (not a replay to one socket) to the push's record."""
    from crisis_console.sockets import realtime
    from tests.test_receipts import make_push

    auth.login_as(Role.AGENT, team="North")
    sio = server_socketio.test_client(app, namespace=names.AGENT, flask_test_client=client)
    seq = make_push(store, [1])
    with app.app_context():
        realtime.script_pushed({"push_id": seq, "seq": seq, "script": {}}, "all")
        realtime.script_pushed({"push_id": seq, "seq": seq, "script": {}}, ["South"])  # nobody there
    deadline = time.monotonic() + 30
    while store.pushes.get(seq).get("connected") != "1":
        assert time.monotonic() < deadline, store.pushes.get(seq)
        time.sleep(0.02)
    assert [
        m["args"][0]["seq"] for m in sio.get_received(names.AGENT) if m["name"] == names.SCRIPT_PUSHED
    ] == [seq]
    sio.disconnect(namespace=names.AGENT)


def test_test_client_with_token(app, auth):
    """``auth={"token": ...}`` authenticates without a cookie."""
    user = auth.make_user(Role.MANAGER)
    token = auth.accounts.create_token(user.username)
    sio = server_socketio.test_client(app, namespace=names.MANAGER, auth={"token": token})
    assert sio.is_connected(names.MANAGER)
    bad = server_socketio.test_client(app, namespace=names.MANAGER, auth={"token": "cc_wrong"})
    assert not bad.is_connected(names.MANAGER)


# --- against the real server, with python-socketio's real client -----------------------


def connect(
    served_app, namespace: str, *, token: str | None = None, cookie: str | None = None
) -> socketio.Client:
    """Connect a real client over websocket; raise ConnectionError when refused.

    ``client.closed`` is an event set when the connection ends.
    """
    client = socketio.Client(reconnection=False)
    client.closed = threading.Event()
    client.on("disconnect", lambda *reason: client.closed.set(), namespace=namespace)
    client.connect(
        served_app.url,
        namespaces=[namespace],
        transports=["websocket"],
        auth={"token": token} if token else None,
        headers={"Cookie": cookie} if cookie else {},
        wait_timeout=5,
    )
    return client


@pytest.mark.served
def test_real_client_without_credentials_is_refused(served_app):
    """A real Socket.IO client with nothing to show is refused on every namespace."""
    for namespace in NAMESPACE_ROLES:
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(served_app, namespace)


@pytest.mark.served
@pytest.mark.parametrize("role", list(Role))
def test_real_client_reaches_only_its_roles_namespaces(served_app, role):
    """With a token, each role connects where it may and is refused elsewhere."""
    token = served_app.token_for(served_app.make_user(role))
    for namespace, roles in NAMESPACE_ROLES.items():
        if role in roles:
            client = connect(served_app, namespace, token=token)
            assert client.connected
            client.disconnect()
        else:
            with pytest.raises(socketio.exceptions.ConnectionError):
                connect(served_app, namespace, token=token)


@pytest.mark.served
def test_real_client_with_session_cookie(served_app):
    """The browser's session cookie authenticates the socket, and the server says who it is."""
    user = served_app.make_user(Role.STAKEHOLDER)
    http = served_app.session_for(user)
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    welcomed = threading.Event()
    client = socketio.Client(reconnection=False)
    client.on(names.SESSION_WELCOME, lambda data: welcomed.set(), namespace=names.DASHBOARD)
    client.connect(
        served_app.url, namespaces=[names.DASHBOARD], transports=["websocket"], headers={"Cookie": cookie}
    )
    assert welcomed.wait(5)
    client.disconnect()


@pytest.mark.served
def test_signing_out_disconnects_the_users_sockets(served_app):
    """Signing out closes that user's live connections, on the server's initiative."""
    user = served_app.make_user(Role.AGENT)
    http = served_app.session_for(user)
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    closed = connect(served_app, names.AGENT, cookie=cookie).closed
    response = http.delete(f"{served_app.url}/api/v1/session")
    assert response.status_code == 204
    assert closed.wait(5), "the socket stayed open after signing out"
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(served_app, names.AGENT, cookie=cookie)


@pytest.mark.served
def test_disabling_a_user_disconnects_their_sockets(served_app):
    """An admin disabling a user closes that user's sockets at once; the token stops working."""
    admin = served_app.make_user(Role.ADMIN)
    agent = served_app.make_user(Role.AGENT)
    token = served_app.token_for(agent)
    closed = connect(served_app, names.AGENT, token=token).closed
    response = served_app.session_for(admin).patch(
        f"{served_app.url}/api/v1/users/{agent.id}", json={"active": False}
    )
    assert response.status_code == 200, response.text
    assert closed.wait(5), "the disabled user's socket stayed open"
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(served_app, names.AGENT, token=token)


@pytest.mark.served
def test_served_app_signs_in_through_the_api(served_app):
    """The real server answers the JSON sign-in with a CSRF token."""
    user = served_app.make_user(Role.MANAGER)
    http = served_app.session_for(user)
    assert http.get(f"{served_app.url}/api/v1/me").json()["user"]["username"] == user.username
    assert PASSWORD  # the shared test password signs in


def test_a_connection_that_cannot_reach_the_store_is_refused_cleanly(app, auth, monkeypatch):
    """Redis unavailable while an agent connects (restarting, pool used up): the connection is
    refused with store_unavailable, which the client retries, not failed half-way."""
    import redis

    from crisis_console.sockets import events as socket_events

    agent = auth.make_user(Role.AGENT)
    token = auth.accounts.create_token(agent.username)

    def unavailable(*args, **kwargs):
        raise redis.exceptions.ConnectionError("No connection available.")

    monkeypatch.setattr(socket_events, "authenticate", unavailable)
    before = dict(socket_events._connections)
    client = server_socketio.test_client(app, namespace="/agent", auth={"token": token})
    assert not client.is_connected("/agent")
    assert socket_events._connections == before, "nothing is left of the refused connection"


def test_the_queue_manager_publishes_a_push_before_delivering_it_here_in_a_task(redis_url):
    """A push goes to the other processes first and to this process's sockets in a task of its
    own that lets the caller answer first (python-socketio does the reverse, in the caller):
    every process's share starts together and the push API does not wait for local sends. Other messages keep python-socketio's way."""
    from crisis_console.sockets import names
    from crisis_console.sockets.healing import HealingRedisManager

    manager = HealingRedisManager(
        redis_url,
        channel="test-order",
        last_seq=lambda: 0,
        reachable=lambda seq: seq,
        published_after=lambda seq: [],
        rooms=lambda audience: "role:agent",
    )
    steps: list[str] = []
    tasks: list = []

    class Server:
        def start_background_task(self, task, *args):
            steps.append("task")
            tasks.append((task, args))

        def sleep(self, seconds):
            steps.append("wait for the caller")

    manager.server = Server()
    manager._publish = lambda message: steps.append(f"publish {message['event']}")
    manager._handle_emit = lambda message: steps.append(f"deliver {message['event']}")
    manager.emit(names.SCRIPT_PUSHED, {"push_id": 4, "seq": 4}, namespace=names.AGENT, room="role:agent")
    assert steps == [f"publish {names.SCRIPT_PUSHED}", "task"]
    task, args = tasks.pop()
    task(*args)
    assert steps[-2:] == ["wait for the caller", f"deliver {names.SCRIPT_PUSHED}"]
    assert args[0]["data"] == [{"push_id": 4, "seq": 4}] and args[0]["host_id"] == manager.host_id

    steps.clear()
    manager._publish = lambda message: (_ for _ in ()).throw(ConnectionError("queue down"))
    with pytest.raises(ConnectionError):
        manager.emit(names.SCRIPT_PUSHED, {"push_id": 5, "seq": 5}, namespace=names.AGENT, room="role:agent")
    assert steps == ["task"]  # this process's agents still get it (the others heal from Redis)

    steps.clear()
    manager._publish = lambda message: steps.append(f"publish {message['event']}")
    manager.emit(names.PUSH_PROGRESS, {"push_id": 4}, namespace=names.MANAGER)
    assert steps == [f"deliver {names.PUSH_PROGRESS}", f"publish {names.PUSH_PROGRESS}"]
