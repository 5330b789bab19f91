"""The admin's policy tester: would this caller get into this application?

It builds the application's policies exactly as the proxy's snapshot does
(``apps.policies.snapshot.policy_spec``) and asks the same engine, so its
answer is the proxy's answer for a caller with these facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.policies.engine import (
    ANONYMOUS,
    Decision,
    Identity,
    PolicySet,
    evaluate_access,
    parse_ip,
)
from apps.policies.models import Application, Rule
from apps.policies.snapshot import policy_spec
from apps.tokens.models import ServiceToken


class PolicyTesterForm(forms.Form):
    application = forms.ModelChoiceField(queryset=Application.objects.order_by("name"))
    email = forms.EmailField(required=False, help_text="Empty: nobody signed in.")
    github_orgs = forms.CharField(
        required=False, help_text="GitHub organizations, comma-separated."
    )
    github_teams = forms.CharField(
        required=False, help_text="GitHub teams as org/team, comma-separated."
    )
    login_method = forms.ChoiceField(
        choices=[(m, m) for m in sorted(Rule.LOGIN_METHODS)], initial="pin"
    )
    client_ip = forms.CharField(required=False, help_text="e.g. 10.1.2.3 or ::1")
    service_token = forms.CharField(
        required=False,
        help_text="A service token's name: test as that token instead of a user.",
    )

    def clean_client_ip(self) -> str:
        text = self.cleaned_data["client_ip"].strip()
        if text and parse_ip(text) is None:
            raise forms.ValidationError("not an IP address")
        return text

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("email") and data.get("service_token"):
            raise forms.ValidationError("test as a user or as a token, not both")
        return data


@dataclass(frozen=True)
class TesterAnswer:
    decision: Decision
    identity: Identity
    notes: tuple[str, ...]

    @property
    def verdict(self) -> str:
        return self.decision.outcome.value


def _split(text: str) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in text.split(",") if p.strip())


def simulate_access(
    app: Application,
    *,
    email: str = "",
    orgs: str = "",
    teams: str = "",
    method: str = "pin",
    client_ip: str = "",
    token_name: str = "",
) -> TesterAnswer:
    notes: list[str] = []
    policies = PolicySet.build(
        [policy_spec(p) for p in app.policies.prefetch_related("rules")]
    )
    who = ANONYMOUS
    if token_name:
        token = ServiceToken.objects.filter(name=token_name).first()
        if token is None:
            notes.append("no token has this name; the caller counts as anonymous")
        elif token.revoked_at is not None or token.expires_at <= timezone.now():
            notes.append("the token is revoked or expired; it counts as anonymous")
        else:
            who = Identity(
                kind="service",
                sub=f"token:{token.client_id}",
                username=f"token:{token.name}",
                token_id=token.pk,
                token_name=token.name,
            )
    elif email:
        who = Identity(
            kind="user",
            sub="tester",
            email=email.strip().lower(),
            username=email.strip().lower(),
            orgs=_split(orgs),
            teams=_split(teams),
            method=method,
        )
    if not app.enabled:
        notes.append("the application is disabled: the proxy answers 404 for it")
    decision = evaluate_access(policies, who, parse_ip(client_ip))
    return TesterAnswer(decision, who, tuple(notes))


def policy_tester_view(request: HttpRequest) -> HttpResponse:
    answer = None
    form = PolicyTesterForm(request.GET if "application" in request.GET else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        answer = simulate_access(
            data["application"],
            email=data["email"],
            orgs=data["github_orgs"],
            teams=data["github_teams"],
            method=data["login_method"],
            client_ip=data["client_ip"],
            token_name=data["service_token"].strip(),
        )
    context = {
        **admin.site.each_context(request),
        "title": "Policy tester",
        "form": form,
        "answer": answer,
    }
    return TemplateResponse(request, "admin/policy_tester.html", context)
