"""The explicit webhook allow-list of tests whose receivers listen on this machine.

The delivery worker refuses loopback targets unless the store's allow-list names them by
IP or CIDR (``alerts.outbound``); tests with real receivers on 127.0.0.1 say so with
``allow_local_webhooks(store)`` (CLI tests: ``hotline access webhooks --allow ...``).
"""

from __future__ import annotations

from typing import Any

from hotline.alerts.access import SYSTEM
from hotline.alerts.outbound import set_allow_list

#: any public host, plus this machine's loopback receivers
LOCAL_RECEIVERS = ("*", "127.0.0.1/32", "::1/128")


def allow_local_webhooks(store: Any) -> None:
    """Allow webhook deliveries from ``store`` to receivers on 127.0.0.1 / ::1."""
    set_allow_list(store, SYSTEM, LOCAL_RECEIVERS)
