"""Settings for the test process: the real settings, fed a test environment.

The suite shares one SQLite file (and the database cache inside it) with the
gunicorn processes that end-to-end tests start, so that what a test writes
through the ORM is what the portal under test reads.
"""

import os
import tempfile
from pathlib import Path

TEST_DIR = os.environ.setdefault(
    "ACCESSPORTAL_TEST_DIR", tempfile.mkdtemp(prefix="accessportal-tests-")
)
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnop")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{TEST_DIR}/portal.sqlite3")
os.environ.setdefault("PORTAL_URL", "http://localhost:8000")
os.environ.setdefault("ACCESSPORTAL_CONFIG_POLL_SECONDS", "0")
os.environ.setdefault("EMAIL_FILE_PATH", f"{TEST_DIR}/mail")
os.environ.pop("REDIS_URL", None)
os.environ.pop("ACCESSPORTAL_DEMO", None)

from accessportal.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise serves through the finders here; an empty root keeps it quiet.
STATIC_ROOT = Path(TEST_DIR) / "static"
STATIC_ROOT.mkdir(exist_ok=True)
