"""Applications with their policies and rules, edited from one page.

Django has no nested inlines, so on an application's page each policy
carries its rules as text, one a line (``include email_domain corp.example``;
see ``apps.policies.ruletext``). The policy's own page edits the same rules
one row each.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from apps.audit.adminlog import AuditedAdmin, record_admin_event
from apps.policies.models import Application, Policy, Rule
from apps.policies.ruletext import (
    check_rule,
    format_rules,
    parse_rule_lines,
    replace_rules,
    rule_tuples,
)
from apps.proxy.revocation import revoke_app

RULES_HELP = (
    "One rule a line: include|require|exclude, a selector, and its value, e.g. "
    "'include email_domain corp.example', 'require ip_range 10.0.0.0/8', "
    "'include everyone'. Selectors: " + ", ".join(Rule.Selector.values) + "."
)


class PolicyInlineForm(forms.ModelForm):
    rules_text = forms.CharField(
        label="Rules",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=RULES_HELP,
    )

    class Meta:
        model = Policy
        fields = ["name", "action", "precedence", "session_duration", "rules_text"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["rules_text"].initial = format_rules(rule_tuples(self.instance))
        self._rules: list[tuple[str, str, str]] | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        if action:
            try:
                self._rules = parse_rule_lines(action, data.get("rules_text", ""))
            except ValidationError as exc:
                self.add_error("rules_text", exc)
        return data

    def save(self, commit: bool = True) -> Any:
        policy = super().save(commit=commit)
        if commit and self._rules is not None:
            replace_rules(policy, self._rules)
        return policy


class PolicyInline(admin.StackedInline):
    model = Policy
    form = PolicyInlineForm
    extra = 0
    show_change_link = True
    ordering = ["precedence", "name"]


@admin.register(Application)
class ApplicationAdmin(AuditedAdmin):
    list_display = ["name", "slug", "host_summary", "path", "upstream", "enabled"]
    list_filter = ["enabled", "launcher", "cors_mode"]
    search_fields = ["name", "slug", "hosts", "upstream"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [PolicyInline]
    actions = ["revoke_sessions"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "enabled", "launcher"]}),
        (
            "Routing",
            {"fields": ["hosts", "path", "upstream", "strip_prefix", "preserve_host"]},
        ),
        (
            "Sessions and identity",
            {"fields": ["session_duration", "audience", "identity_header"]},
        ),
        (
            "Upstream connection and CORS",
            {
                "classes": ["collapse"],
                "fields": [
                    "ca_bundle",
                    "connect_timeout",
                    "read_timeout",
                    "cors_mode",
                    "cors_origins",
                ],
            },
        ),
    ]

    @admin.display(description="hosts")
    def host_summary(self, obj: Application) -> str:
        return ", ".join(obj.host_list)

    @admin.action(description="Revoke all sessions of the selected applications")
    def revoke_sessions(
        self, request: HttpRequest, queryset: QuerySet[Application]
    ) -> None:
        for app in queryset:
            revoke_app(app.pk)
            record_admin_event(request, "app_sessions_revoked", app)
        self.message_user(
            request,
            f"Sessions revoked for {queryset.count()} application(s).",
            messages.SUCCESS,
        )


class RuleFormSet(BaseInlineFormSet):
    """Check each rule against the policy's action as submitted."""

    def clean(self) -> None:
        super().clean()
        action = getattr(self.instance, "action", "")
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("selector"):
                continue
            try:
                data["value"] = check_rule(
                    action, data["kind"], data["selector"], data.get("value", "")
                )
                form.instance.value = data["value"]
            except ValidationError as exc:
                for field, errors in exc.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)


class RuleInline(admin.TabularInline):
    model = Rule
    formset = RuleFormSet
    extra = 1


@admin.register(Policy)
class PolicyAdmin(AuditedAdmin):
    list_display = ["name", "application", "action", "precedence", "rule_count"]
    list_filter = ["action", "application"]
    search_fields = ["name", "application__name", "application__slug"]
    list_select_related = ["application"]
    inlines = [RuleInline]

    @admin.display(description="rules")
    def rule_count(self, obj: Policy) -> int:
        return obj.rules.count()
