"""The peer for the benchmark: django-revproxy's ProxyView, no authentication.

As lean as a Django project gets (one middleware, no sessions, no auth), so
the comparison is against the same stack doing the least it can.
"""

import os

SECRET_KEY = "bench-only-not-secret"  # noqa: S105 - a throwaway local server
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.revproxy_site.urls"
INSTALLED_APPS = ["revproxy"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
APPEND_SLASH = False
DATABASES: dict = {}
USE_TZ = True
UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9")
LOGGING = {"version": 1, "root": {"level": "WARNING"}}
