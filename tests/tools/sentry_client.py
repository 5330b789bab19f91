"""An application that reports one exception with the real sentry-sdk.

Run as its own process, as a team's service would be:

    SENTRY_DSN=http://key@127.0.0.2:8000/42 python sentry_client.py MARKER

With ``ACCESS_CLIENT_ID`` and ``ACCESS_CLIENT_SECRET`` set, every request to
Sentry also carries the portal's service-token headers. The SDK has no option
for extra request headers, so a small transport subclass adds them. The
process prints one JSON line: the event id and the HTTP status of each
request the transport sent.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import sentry_sdk
from sentry_sdk.transport import HttpTransport

statuses: list[int] = []


class RecordingTransport(HttpTransport):
    """The SDK's own transport, noting what the portal answered."""

    def _request(self, *args: Any, **kwargs: Any) -> Any:
        response = super()._request(*args, **kwargs)
        statuses.append(response.status)
        return response


class AccessTokenTransport(RecordingTransport):
    """Adds the portal's service-token headers to every request."""

    def _update_headers(self, headers: dict[str, str]) -> None:
        super()._update_headers(headers)
        headers["Access-Client-Id"] = os.environ["ACCESS_CLIENT_ID"]
        headers["Access-Client-Secret"] = os.environ["ACCESS_CLIENT_SECRET"]


def fail_checkout(order_id: int) -> None:
    raise ValueError(f"checkout failed for order {order_id}: {sys.argv[1]}")


def main() -> None:
    uses_token = "ACCESS_CLIENT_ID" in os.environ
    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        transport=AccessTokenTransport if uses_token else RecordingTransport,
        release="tools-suite@1.0",
        environment="test",
        auto_session_tracking=False,
        send_client_reports=False,
        default_integrations=False,
    )
    try:
        fail_checkout(1234)
    except ValueError:
        event_id = sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=10)
    print(json.dumps({"event_id": event_id, "statuses": statuses}))


if __name__ == "__main__":
    main()
