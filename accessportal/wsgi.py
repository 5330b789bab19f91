"""WSGI entry point: the host dispatcher in front of Django."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accessportal.settings")

_django = get_wsgi_application()

from accessportal.dispatch import Dispatcher  # noqa: E402  (needs the app registry)

application = Dispatcher(_django)
