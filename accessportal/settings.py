"""Django settings for Access Portal, all read from the environment.

See ``accessportal/env.py`` for how values are checked, and the README for the
full list of variables.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import unquote, urlsplit

from accessportal import env

BASE_DIR = Path(__file__).resolve().parent.parent

DEMO_SECRET_KEY = "accessportal-demo-key-not-for-production-use-0123456789abcdef"


# WAL lets the workers of one instance read while another writes.
_SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def _database(url: str | None) -> dict:
    if url is None:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "accessportal.sqlite3",
            "OPTIONS": _SQLITE_OPTIONS,
        }
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:
            path = parts.netloc + path
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path or BASE_DIR / "accessportal.sqlite3",
            "OPTIONS": _SQLITE_OPTIONS,
        }
    if not parts.path.strip("/"):
        raise env.ConfigError("DATABASE_URL must name a database, e.g. /accessportal")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # A lost database must surface as a quick 503, not a hung worker.
        "OPTIONS": {"connect_timeout": 3},
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


try:
    DEMO = env.get_bool("ACCESSPORTAL_DEMO", False)
    SECRET_KEY = env.get_str("SECRET_KEY") or ""
    if not SECRET_KEY:
        if not DEMO:
            raise env.ConfigError(
                "SECRET_KEY is required (set ACCESSPORTAL_DEMO=1 only for a demo)"
            )
        SECRET_KEY = DEMO_SECRET_KEY
    elif len(SECRET_KEY) < 32:
        raise env.ConfigError("SECRET_KEY must be at least 32 characters long")
    PORTAL = env.get_portal_url("PORTAL_URL", "http://localhost:8000")
    DATABASES = {
        "default": _database(
            env.get_url("DATABASE_URL", {"sqlite", "postgres", "postgresql"})
        )
    }
    REDIS_URL = env.get_url("REDIS_URL", {"redis", "rediss", "unix"})
    # Lets several portals (or test runs) share one Redis database.
    CACHE_KEY_PREFIX = env.get_str("ACCESSPORTAL_CACHE_PREFIX", "accessportal")
    TRUSTED_PROXY_COUNT = env.get_int("TRUSTED_PROXY_COUNT", 0)
    SESSION_HOURS = env.get_int("ACCESSPORTAL_SESSION_HOURS", 24, minimum=1)
    CONFIG_POLL_SECONDS = env.get_int("ACCESSPORTAL_CONFIG_POLL_SECONDS", 2, minimum=0)
    UPSTREAM_POOL_SIZE = env.get_int("ACCESSPORTAL_UPSTREAM_POOL_SIZE", 64, minimum=1)
    EMAIL_FILE_PATH = env.get_str("EMAIL_FILE_PATH")
    EMAIL_HOST = env.get_str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env.get_int("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = env.get_str("EMAIL_HOST_USER", "") or ""
    EMAIL_HOST_PASSWORD = env.get_str("EMAIL_HOST_PASSWORD", "") or ""
    EMAIL_USE_TLS = env.get_bool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = env.get_bool("EMAIL_USE_SSL", False)
    EMAIL_TIMEOUT = 10
    DEFAULT_FROM_EMAIL = env.get_str("DEFAULT_FROM_EMAIL", "access@localhost")
    GITHUB_CLIENT_ID = env.get_str("GITHUB_CLIENT_ID")
    GITHUB_CLIENT_SECRET = env.get_str("GITHUB_CLIENT_SECRET")
    GITHUB_URL = (
        env.get_url("GITHUB_URL", {"http", "https"}) or "https://github.com"
    ).rstrip("/")
    GITHUB_API_URL = (env.get_url("GITHUB_API_URL", {"http", "https"}) or "").rstrip(
        "/"
    ) or None
    METRICS_ALLOWED_NETWORKS = [
        net.strip()
        for net in (
            env.get_str("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128") or ""
        ).split(",")
        if net.strip()
    ]
    for _network in METRICS_ALLOWED_NETWORKS:
        try:
            ipaddress.ip_network(_network, strict=False)
        except ValueError:
            raise env.ConfigError(
                f"METRICS_ALLOWED_NETWORKS has {_network!r}, which is not a CIDR range"
            ) from None
    METRICS_TOKEN = env.get_str("METRICS_TOKEN")
    AUDIT_RETENTION_DAYS = env.get_int("AUDIT_RETENTION_DAYS", 180, minimum=1)
    LOG_LEVEL = (env.get_str("LOG_LEVEL", "INFO") or "INFO").upper()
    if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise env.ConfigError(
            "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
            f"not {LOG_LEVEL!r}"
        )
    PIN_LOGIN_ENABLED = env.get_bool("ACCESSPORTAL_PIN_LOGIN", True)
except env.ConfigError as error:
    env.fail(error)

if GITHUB_API_URL is None:
    GITHUB_API_URL = (
        "https://api.github.com"
        if GITHUB_URL == "https://github.com"
        else f"{GITHUB_URL}/api/v3"
    )
GITHUB_LOGIN_ENABLED = bool(GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET)

PORTAL_URL = PORTAL.origin
PORTAL_HOST = PORTAL.host
IS_HTTPS = PORTAL.is_https

DEBUG = False
# Host checks happen in the dispatcher (accessportal/dispatch.py), which knows
# the application hosts; Django sees only requests it has already accepted.
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "accessportal.admin_apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_email",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "apps.policies",
    "apps.tokens",
    "apps.proxy",
    "apps.identity",
    "apps.audit",
]

MIDDLEWARE = [
    "apps.identity.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "apps.identity.middleware.PortalCsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "accessportal.urls"
WSGI_APPLICATION = "accessportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.identity.context.portal",
            ],
        },
    }
]

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    # Shared by every worker of this instance, unlike the per-process memory
    # cache, so a logout or revocation reaches all of them at once.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "accessportal_cache",
            "KEY_PREFIX": "accessportal",
            "OPTIONS": {"MAX_ENTRIES": 100000, "CULL_FREQUENCY": 10},
        }
    }

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_NAME = "accessportal_session"
SESSION_COOKIE_AGE = SESSION_HOURS * 3600
SESSION_COOKIE_SECURE = IS_HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_NAME = "accessportal_csrf"
CSRF_COOKIE_SECURE = IS_HTTPS
CSRF_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = [PORTAL_URL]
CSRF_FAILURE_VIEW = "apps.identity.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "no-referrer"
SECURE_HSTS_SECONDS = 31536000 if IS_HTTPS else 0
# The portal's own subdomains (if any) are its own; application hosts are
# usually siblings, which these flags do not touch.
SECURE_HSTS_INCLUDE_SUBDOMAINS = IS_HTTPS
SECURE_HSTS_PRELOAD = IS_HTTPS
# TLS is usually terminated by a load balancer in front of the portal.
SECURE_SSL_REDIRECT = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if IS_HTTPS else None
X_FRAME_OPTIONS = "DENY"
# W008: TLS ends at the load balancer, so the portal never redirects to https
# itself. W003: CSRF protection is on, through PortalCsrfViewMiddleware, a
# subclass of Django's that the check does not recognise by name.
SILENCED_SYSTEM_CHECKS = ["security.W008", "security.W003"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/.accessportal/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if EMAIL_FILE_PATH:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
elif DEMO:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

# allauth: GitHub only; no local sign-up or passwords for members.
ACCOUNT_ADAPTER = "apps.identity.github.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "apps.identity.github.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_QUERY_EMAIL = True
SOCIALACCOUNT_PROVIDERS = {
    "github": {
        "SCOPE": ["read:user", "user:email", "read:org"],
        "GITHUB_URL": GITHUB_URL,
        "APPS": (
            [
                {
                    "client_id": GITHUB_CLIENT_ID,
                    "secret": GITHUB_CLIENT_SECRET,
                    "key": "",
                }
            ]
            if GITHUB_LOGIN_ENABLED
            else []
        ),
    }
}

OTP_TOTP_ISSUER = "Access Portal"
OTP_EMAIL_TOKEN_VALIDITY = 600

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {"django.security.DisallowedHost": {"level": "ERROR"}},
}
