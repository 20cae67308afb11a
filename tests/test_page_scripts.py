"""Every page with an API form loads the script that submits it."""

from __future__ import annotations

import pytest

from crisis_console.roles import Role


@pytest.mark.parametrize(
    ("role", "paths"),
    [
        (Role.MANAGER, ["/manager", "/manager/alerts", "/manager/phone", "/agent", "/dashboard"]),
        (Role.ADMIN, ["/admin/users", "/admin/lines", "/manager/alerts", "/dashboard"]),
        (Role.AGENT, ["/agent"]),
        (Role.STAKEHOLDER, ["/dashboard"]),
    ],
)
def test_pages_with_api_forms_load_api_forms_js(auth, client, role, paths):
    """A ``data-api-url`` form (or a script that makes one) never sits on a page without api-forms.js."""
    auth.login_as(role)
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        writes_forms = ('id="alerts"' in html and "js/alerts.js" in html) or (
            "data-suggest" in html and "js/spikes.js" in html
        )
        makes_forms = "data-api-url" in html or writes_forms
        if makes_forms:
            assert "js/api-forms.js" in html, f"{path} has API forms but does not load api-forms.js"


def test_the_icon_is_served_and_linked(auth, client):
    """/favicon.ico answers 200 with an icon, signed in or not; every page links the SVG."""
    for signed_in in (False, True):
        if signed_in:
            auth.login_as("agent")
        with client.get("/favicon.ico") as icon:
            assert icon.status_code == 200 and icon.mimetype == "image/vnd.microsoft.icon"
            assert icon.data[:4] == b"\x00\x00\x01\x00"
    page = client.get("/agent").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
