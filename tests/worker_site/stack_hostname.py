"""The host name a Celery worker of tests/stack.py records on its task instances.

Several workers of one stack share this machine, where each would be a container of its own: AirflowStack
puts this directory on each worker's PYTHONPATH with `AIRFLOW__CORE__HOSTNAME_CALLABLE=
stack_hostname.hostname` and the worker's name in STACK_WORKER_HOSTNAME, so a task instance's `hostname`
says which worker ran it.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("STACK_WORKER_HOSTNAME") or socket.getfqdn()
