"""Serve Saleor with uvicorn workers forked from one process that loaded Saleor once.

Run by Saleor's own interpreter (its venv), from its source folder:
`python serve.py HOST PORT WORKERS`. This is `uvicorn saleor.asgi:application --workers N`
with the application preloaded, for two reasons seen on a busy two-core machine:
importing `saleor.asgi` (Django, the GraphQL schema: Saleor preloads both on import) took
over a minute per worker, and uvicorn's supervisor killed and restarted a worker whose
health ping went unanswered for 5 s while it was importing, so start-up took minutes.
Loading once and forking (what gunicorn's `--preload` does; Saleor's `preload_app` even
freezes the GC for it) starts both workers in the time of one import.

It must not import anything of the CRM: it runs in Saleor's interpreter.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when its parent dies."""
    parent = os.getppid()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        sys.exit(1)


def main() -> None:
    host, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    die_with_parent()  # a test run killed outright (no teardown) leaves no Saleor behind
    sys.path.insert(0, os.getcwd())
    # Saleor's own venv has these; the CRM's (which type-checks this file) does not.
    import uvicorn
    from django.db import connections  # type: ignore[import-not-found,unused-ignore]
    from saleor.asgi import application  # type: ignore[import-not-found,unused-ignore]

    connections.close_all()  # no connection may be shared across the fork

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)

    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            die_with_parent()  # the workers go when the launcher goes, however it went
            config = uvicorn.Config(
                application, log_level="warning", access_log=False, lifespan="off"
            )
            uvicorn.Server(config).run(sockets=[listener])
            os._exit(0)
        children.append(pid)
    listener.close()

    def stop(signum: int, frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while children:
        pid, code = os.wait()
        children.remove(pid)
        if code and not status:  # one worker died: stop the others, exit with its code
            status = os.waitstatus_to_exitcode(code) or 1
            stop(signal.SIGTERM, None)
    sys.exit(status)


if __name__ == "__main__":
    main()
