"""GitHub sign-in through allauth against the fake GitHub on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client

from apps.audit.models import AuditEvent
from apps.identity import github
from apps.proxy.returnto import sign_return
from tests.support.fake_github import FakeGitHub, FakeUser

pytestmark = pytest.mark.django_db


@pytest.fixture
def github_on(settings, fake_github: FakeGitHub) -> Iterator[FakeGitHub]:  # type: ignore[no-untyped-def]
    from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter

    saved = dict(vars(GitHubOAuth2Adapter))
    settings.GITHUB_LOGIN_ENABLED = True
    settings.GITHUB_URL = fake_github.url
    settings.GITHUB_API_URL = fake_github.api_url
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["github"] = {
        **providers["github"],
        "APPS": [{"client_id": fake_github.client_id, "secret": "s3cret", "key": ""}],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers
    github.configure_urls()
    yield fake_github
    for name in ("access_token_url", "authorize_url", "profile_url", "emails_url"):
        setattr(GitHubOAuth2Adapter, name, saved[name])
    GitHubOAuth2Adapter.get_callback_url = saved["get_callback_url"]  # type: ignore[method-assign]


def _github_login(
    client: Client, fake: FakeGitHub, user: FakeUser, next_value: str = ""
):  # type: ignore[no-untyped-def]
    fake.configure(user)
    start = client.post(
        "/accounts/github/login/",
        {
            "process": "login",
            "next": f"/login/?next={quote(next_value, safe='')}" if next_value else "/",
        },
    )
    assert start.status_code == 302, start.content
    assert start["Location"].startswith(f"{fake.url}/login/oauth/authorize?")
    bounced = requests.get(start["Location"], allow_redirects=False, timeout=5)
    callback = urlsplit(bounced.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}" == "http://localhost:8000"
    return client.get(f"{callback.path}?{callback.query}", REMOTE_ADDR="10.2.2.2")


def test_github_authorize_asks_for_org_scopes(
    client: Client, github_on: FakeGitHub
) -> None:
    start = client.post("/accounts/github/login/", {"process": "login"})

    requests.get(start["Location"], allow_redirects=False, timeout=5)
    query = github_on.last_authorize
    assert set(query["scope"][0].split()) == {"read:user", "user:email", "read:org"}
    assert query["redirect_uri"] == [
        "http://localhost:8000/accounts/github/login/callback/"
    ]


def test_github_allowed_org_on_second_page_signs_in(
    client: Client, github_on: FakeGitHub, make_app
) -> None:  # type: ignore[no-untyped-def]
    app = make_app("echo", "echo.localhost", include=[("github_org", "acme")])
    orgs = [f"org{i}" for i in range(35)] + ["Acme"] + [f"more{i}" for i in range(4)]
    user = FakeUser(
        login="ada-gh", email="ada@users.example", orgs=orgs, teams=[("acme", "ops")]
    )
    signed = sign_return(app.pk, "echo.localhost", "/dash?x=1")

    resp = _github_login(client, github_on, user, signed)

    assert resp.status_code == 302, resp.content
    assert resp["Location"].startswith(
        "http://echo.localhost:8000/.accessportal/authorized?code="
    )
    facts = client.session["accessportal.identity"]
    assert facts["method"] == "github"
    assert facts["username"] == "ada-gh"
    assert facts["email"] == "ada@users.example"
    assert "acme" in facts["orgs"] and len(facts["orgs"]) == 40
    assert facts["teams"] == ["acme/ops"]
    member = get_user_model().objects.get(username="ada@users.example")
    assert not member.has_usable_password() and not member.is_staff
    event = AuditEvent.objects.get(kind="login_succeeded")
    assert event.detail["method"] == "github"
    assert event.client_ip == "10.2.2.2"


def test_github_team_rule_admits_member(
    client: Client, github_on: FakeGitHub, make_app
) -> None:  # type: ignore[no-untyped-def]
    make_app("echo", "echo.localhost", include=[("github_team", "acme/ops")])
    user = FakeUser(
        login="t", email="t@users.example", orgs=["acme"], teams=[("acme", "ops")]
    )

    resp = _github_login(client, github_on, user)

    assert resp.status_code == 302
    assert resp["Location"] == "/"


def test_github_refused_org_gets_clear_page(
    client: Client, github_on: FakeGitHub, make_app
) -> None:  # type: ignore[no-untyped-def]
    make_app("echo", "echo.localhost", include=[("github_org", "acme")])
    user = FakeUser(login="eve", email="eve@users.example", orgs=["evilcorp"])

    resp = _github_login(client, github_on, user)

    assert resp.status_code == 403
    assert b"No application admits" in resp.content
    assert not get_user_model().objects.filter(username="eve@users.example").exists()
    event = AuditEvent.objects.get(kind="login_failed")
    assert event.detail == {"method": "github", "reason": "not-admissible"}
    assert client.get("/").status_code == 302


def test_github_unverified_primary_email_refused(
    client: Client, github_on: FakeGitHub, make_app
) -> None:  # type: ignore[no-untyped-def]
    make_app("echo", "echo.localhost", include=[("email_domain", "corp.example")])
    user = FakeUser(
        login="sly",
        email="sly@corp.example",
        verified=False,
        extra_emails=[("sly@elsewhere.example", True)],
    )

    resp = _github_login(client, github_on, user)

    assert resp.status_code == 403
    assert b"no verified primary e-mail" in resp.content
    assert not get_user_model().objects.exists()
    assert (
        AuditEvent.objects.get(kind="login_failed").detail["reason"]
        == "no-verified-email"
    )


def test_github_verified_email_domain_admits_without_orgs(
    client: Client, github_on: FakeGitHub, make_app
) -> None:  # type: ignore[no-untyped-def]
    make_app("echo", "echo.localhost", include=[("email_domain", "corp.example")])

    resp = _github_login(
        client, github_on, FakeUser(login="ada", email="Ada@Corp.example")
    )

    assert resp.status_code == 302
    assert client.session["accessportal.identity"]["email"] == "ada@corp.example"


def test_github_callback_bad_state_refused(
    client: Client, github_on: FakeGitHub
) -> None:
    resp = client.get("/accounts/github/login/callback/?code=x&state=forged")

    assert resp.status_code == 403
    assert b"did not complete" in resp.content


def test_github_login_get_shows_confirm_form_not_redirect(
    client: Client, github_on: FakeGitHub
) -> None:
    resp = client.get("/accounts/github/login/")

    assert resp.status_code == 200
    assert b'method="post"' in resp.content


@pytest.mark.parametrize(
    "path", ["/accounts/signup/", "/accounts/login/", "/accounts/email/"]
)
def test_allauth_account_pages_lead_to_portal_login(client: Client, path: str) -> None:
    resp = client.get(path)

    assert resp.status_code == 302
    assert resp["Location"] == "/login/"


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password/reset/",
        "/accounts/password/change/",
        "/accounts/confirm-email/x/",
    ],
)
def test_allauth_password_pages_absent(client: Client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_read_memberships_paginates(github_on: FakeGitHub) -> None:
    user = FakeUser(
        orgs=[f"o{i}" for i in range(70)], teams=[("o1", f"t{i}") for i in range(45)]
    )

    orgs, teams = github.read_memberships(github_on.issue_token(user))

    assert len(orgs) == 70
    assert len(teams) == 45


def test_read_memberships_next_link_to_other_host_refused(
    settings, github_on: FakeGitHub
) -> None:  # type: ignore[no-untyped-def]
    # The same server under another origin: its Link headers name 127.0.0.1,
    # which is not the configured API host, so the token must not follow.
    settings.GITHUB_API_URL = github_on.api_url.replace("127.0.0.1", "localhost")
    user = FakeUser(orgs=[f"o{i}" for i in range(40)])

    with pytest.raises(github.GitHubError):
        github.read_memberships(github_on.issue_token(user))


def test_read_memberships_bad_token_raises(github_on: FakeGitHub) -> None:
    with pytest.raises(github.GitHubError):
        github.read_memberships("not-a-token")


@pytest.mark.parametrize(
    "path",
    ["/accounts/github/login/", "/accounts/github/login/callback/?code=a&state=b"],
)
def test_github_disabled_endpoints_404(client: Client, settings, path: str) -> None:  # type: ignore[no-untyped-def]
    settings.GITHUB_LOGIN_ENABLED = False

    assert client.post(path).status_code == 404
    assert client.get(path).status_code == 404
