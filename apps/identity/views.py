from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(
        request,
        "errors/error.html",
        {
            "title": "Form expired",
            "message": "This form is no longer valid. Go back, reload the page and try again.",
        },
        status=403,
    )


def launcher(request: HttpRequest) -> HttpResponse:
    # TODO: list the applications this member may use (issue 4).
    return render(
        request,
        "errors/error.html",
        {"title": "Access Portal", "message": "Sign-in is being built."},
    )


def login_page(request: HttpRequest) -> HttpResponse:
    # TODO: PIN and GitHub sign-in (issue 4).
    return render(
        request,
        "errors/error.html",
        {"title": "Sign in", "message": "Sign-in is being built."},
    )


def logout_view(request: HttpRequest) -> HttpResponse:
    from apps.identity.sessions import end_request_session

    if request.method == "POST":
        end_request_session(request)
    return render(
        request,
        "errors/error.html",
        {"title": "Signed out", "message": "You are signed out."},
    )
