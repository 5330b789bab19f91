"""Production defaults for gunicorn; every value can be overridden on the
command line or with GUNICORN_CMD_ARGS.

The gevent worker is the default because the proxy spends most of its time
waiting on upstreams: each request is a cheap greenlet, so a few hundred slow
upstream calls cannot use up the workers and starve fast requests to other
applications, which a fixed pool of sync workers or threads would allow.
"""

import multiprocessing
import os

bind = os.environ.get("ACCESSPORTAL_BIND", "127.0.0.1:8000")
workers = int(
    os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2))
)
worker_class = "gevent"
worker_connections = 1000
keepalive = 30
timeout = 120
graceful_timeout = 30
# Large uploads stream through; these only bound the request line and headers.
limit_request_line = 8190
limit_request_fields = 200
limit_request_field_size = 16384
accesslog = None
control_socket_disable = True
