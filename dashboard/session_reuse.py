"""Answering a navigation at once: Panel's warm session reuse and the primer session.

Without it a page's HTTP request waits for that browser's whole session (the state, the
views and their Bokeh models: half a second or more), and only then does the browser start
loading the scripts. With ``enable()`` (Panel's ``reuse_sessions = "warm"``) the HTML page
is rendered from an earlier session of the same kind (``session_key``: the crew page or the
wall display; the page holds only the scripts and empty root placeholders, never a
session's content), a new session id and token are issued from the request's own cookies
and arguments, and that browser's session is built in a worker thread while the browser
loads the scripts; its websocket waits for it.

The session the HTML is rendered from lives as long as the server. ``prime(url)`` makes
it a guest's session the server requests itself at start (``serve(warm=True)``): no
browser ever connects to it, so its deferred stages and its periodic updates, which start
when a browser has loaded the page (``app.create_page``), never run, and its document stays
the first stage only (cheap to render the HTML from). ``prepare_document`` gives a
session whose HTML came from another what Panel would have set on its document when
rendering it (the local stylesheet folder); ``browsers`` tells a session's periodic update
whether anybody is connected to see it. Owns ``enable``, ``disable``, ``session_key``,
``prepare_document``, ``prime`` and ``browsers``.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["browsers", "disable", "enable", "prepare_document", "prime", "session_key"]

log = logging.getLogger(__name__)


def session_key(request: Any) -> tuple[str, str]:
    """Which requests get their HTML page from the same earlier session: the path and the
    kind of page (``wall`` for ``?wall=...``, else ``crew``). Other arguments (``?alert=``)
    change what a session shows, never its HTML, and must not make a new long-lived session
    per value."""
    args = getattr(request, "arguments", None) or {}
    return (str(request.path), "wall" if "wall" in args else "crew")


def enable() -> None:
    """Turn on warm session reuse for the pages this process serves (``pn.config``)."""
    import panel as pn

    pn.config.session_key_func = session_key
    pn.config.reuse_sessions = "warm"


def disable() -> None:
    """Every request builds its session before its HTML page is sent (Panel's default)."""
    import panel as pn

    pn.config.reuse_sessions = False
    pn.config.session_key_func = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect (to a login page) is an answer, not a page: raised as ``HTTPError``."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def browsers(doc: Any) -> int | None:
    """Browsers connected to the session of ``doc`` now; None when not known (no session,
    or a Bokeh without the session's ``connection_count``). Panel keeps every session it
    renders HTML pages from alive for good, and two "first" requests arriving together are
    both kept (the server's primer and an early browser): such a session, and any session
    between its browser closing and its expiry, has 0 and skips its periodic updates."""
    ctx = getattr(doc, "session_context", None)
    session = getattr(ctx, "_session", None)  # set by Bokeh when the session is created
    count = getattr(session, "connection_count", None)
    return count if isinstance(count, int) else None


def prepare_document(doc: Any) -> None:
    """What Panel sets on a session's document when it renders that session's HTML page,
    set here for a session whose page came from another (see the module docstring): the
    theme and the local folder of Panel's stylesheets, without which Panel points the
    stylesheets of the session's models at its CDN (a request leaving the machine, failing
    in an offline control room). Call before the session's models are built."""
    import panel as pn
    from panel.io.resources import get_dist_path

    doc.template_variables.setdefault("theme_name", pn.config.theme)
    doc.template_variables.setdefault("dist_url", get_dist_path())


def prime(url: str, timeout: float = 60.0) -> bool:
    """Request ``url`` once as a guest, retrying until the server answers or ``timeout``
    seconds passed, so that the session later HTML pages are rendered from is this one
    (see the module docstring); whether it answered 200. Never raises."""
    opener = urllib.request.build_opener(_NoRedirect)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=max(1.0, timeout)) as resp:
                resp.read()
                return resp.status == 200
        except urllib.error.HTTPError as exc:  # e.g. a login required: no primer session
            log.info("dashboard primer request refused (%s): pages are answered once the "
                     "first browser's session is built", exc.code)
            return False
        except OSError as exc:
            if time.monotonic() >= deadline:
                log.info("dashboard primer request failed: %s", exc)
                return False
            time.sleep(0.2)  # the server is not listening yet
