"""The audit log: read-only, filterable, exportable as CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import URLPattern, path
from django.utils import timezone

from apps.audit.adminlog import ReadOnlyAdmin, actor_of, request_ip
from apps.audit.models import AuditEvent
from apps.audit.service import record_event

CSV_COLUMNS: list[Any] = [
    "time",
    "kind",
    "actor",
    "application",
    "client_ip",
    "outcome",
    "detail",
]


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    # CSV injection: a cell starting with = + - @ (or a tab or CR) is a
    # formula to Excel and LibreOffice; a leading quote keeps it text.
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


class ActorFilter(admin.SimpleListFilter):
    """The busiest actors as links, and a box for any other exact actor.

    Listing every distinct actor (as Django's default filter does) would put
    every member's address on the page.
    """

    title = "actor"
    parameter_name = "actor"
    template = "admin/audit/actor_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        busiest = (
            AuditEvent.objects.exclude(actor="")
            .values("actor")
            .annotate(events=Count("id"))
            .order_by("-events", "actor")[:15]
        )
        return [(row["actor"], row["actor"]) for row in busiest]

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: Any) -> Any:
        # The box's form must carry the other filters along.
        self.other_params = [
            (key, value)
            for key, value in changelist.params.items()
            if key != self.parameter_name
        ]
        return super().choices(changelist)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(actor=self.value())
        return queryset


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["time", "kind", "actor", "application", "client_ip", "outcome"]
    list_filter = ["kind", "application", ActorFilter, "outcome"]
    search_fields = ["kind", "actor", "application", "client_ip", "outcome"]
    date_hierarchy = "time"
    fields = list(CSV_COLUMNS)
    readonly_fields = CSV_COLUMNS
    change_list_template = "admin/audit/auditevent/change_list.html"
    list_per_page = 100

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_view),
            name="audit_auditevent_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        # The change list applies the same filters, search and date drill-down
        # as the page the admin is looking at.
        changelist = self.get_changelist_instance(request)
        events = changelist.queryset.order_by("-time", "-id")
        record_event(
            "audit_exported",
            actor=actor_of(request),
            client_ip=request_ip(request),
            outcome="ok",
            detail={"filters": request.GET.urlencode()},
        )
        writer = csv.writer(_Echo())

        def rows() -> Iterator[str]:
            yield writer.writerow(CSV_COLUMNS)
            for event in events.iterator(chunk_size=1000):
                yield writer.writerow(
                    [
                        event.time.isoformat(),
                        csv_cell(event.kind),
                        csv_cell(event.actor),
                        csv_cell(event.application),
                        csv_cell(event.client_ip),
                        csv_cell(event.outcome),
                        csv_cell(json.dumps(event.detail, sort_keys=True)),
                    ]
                )

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
