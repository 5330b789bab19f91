"""The audit log in the admin: read-only, filterable, exportable."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def events() -> list[AuditEvent]:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return [
        AuditEvent.objects.create(
            time=when,
            kind="login",
            actor="ann@corp.example",
            application="grafana",
            client_ip="10.0.0.1",
            outcome="ok",
            detail={"method": "pin"},
        ),
        AuditEvent.objects.create(
            time=when,
            kind="denied",
            actor="eve@corp.example",
            application="grafana",
            outcome="deny",
            detail={"reason": "policy:block"},
        ),
        AuditEvent.objects.create(
            time=when,
            kind="login",
            actor='=HYPERLINK("http://x")',
            application="sentry",
            outcome="ok",
        ),
    ]


def test_audit_admin_read_only(staff_client: Client, events: list) -> None:
    event = events[0]
    assert staff_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    page = staff_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert staff_client.post(change, {"kind": "x"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    response = staff_client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert response.status_code in (200, 302)


@pytest.mark.parametrize(
    ("query", "actors"),
    [
        ("kind=login", {"ann@corp.example", '=HYPERLINK("http://x")'}),
        ("application=grafana", {"ann@corp.example", "eve@corp.example"}),
        ("actor=eve%40corp.example", {"eve@corp.example"}),
        ("q=ann", {"ann@corp.example"}),
    ],
)
def test_audit_admin_filters(
    staff_client: Client, events: list, query: str, actors: set
) -> None:
    response = staff_client.get(
        reverse("admin:audit_auditevent_changelist") + "?" + query
    )
    assert response.status_code == 200
    shown = {e.actor for e in response.context["cl"].result_list}
    assert shown == actors


def read_csv(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_audit_csv_export_follows_filters(staff_client: Client, events: list) -> None:
    listing = staff_client.get(
        reverse("admin:audit_auditevent_changelist") + "?application=grafana"
    ).content.decode()
    assert 'href="/admin/audit/auditevent/export.csv?application=grafana"' in listing
    response = staff_client.get(
        reverse("admin:audit_auditevent_export") + "?application=grafana"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == [
        "time",
        "kind",
        "actor",
        "application",
        "client_ip",
        "outcome",
        "detail",
    ]
    assert sorted(r[2] for r in rows[1:]) == ["ann@corp.example", "eve@corp.example"]
    ann = next(r for r in rows if r[2] == "ann@corp.example")
    assert ann[0] == "2026-03-01T12:00:00+00:00"
    assert ann[4] == "10.0.0.1"
    assert ann[6] == '{"method": "pin"}'


def test_audit_csv_export_neutralises_formulas(
    staff_client: Client, events: list
) -> None:
    rows = read_csv(
        staff_client.get(
            reverse("admin:audit_auditevent_export") + "?application=sentry"
        )
    )
    assert rows[1][2] == '\'=HYPERLINK("http://x")'


def test_audit_csv_export_is_itself_audited(staff_client: Client, events: list) -> None:
    read_csv(staff_client.get(reverse("admin:audit_auditevent_export") + "?kind=login"))
    event = AuditEvent.objects.get(kind="audit_exported")
    assert event.actor == "root"
    assert event.detail["filters"] == "kind=login"


def test_audit_actor_box_keeps_other_filters(
    staff_client: Client, events: list
) -> None:
    page = staff_client.get(
        reverse("admin:audit_auditevent_changelist") + "?kind=login"
    ).content.decode()
    assert '<input type="hidden" name="kind" value="login">' in page
    assert 'name="actor"' in page
