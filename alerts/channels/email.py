"""E-mail channel: SMTP, one message per notification (plain text + HTML alternative).

Settings: ``to`` (list of addresses), ``from`` (default ``hotline@localhost``),
``smtp_host`` (default ``localhost``), ``smtp_port`` (25), ``starttls`` (false),
``username`` and ``password_env`` (the NAME of an environment variable holding
the SMTP password: the password itself is never stored or shown),
``dashboard_url`` (links point to ``<dashboard_url>?alert=<alert id>``).
The idempotency key is in ``Message-ID`` and ``X-Hotline-Idempotency-Key``.
"""

from __future__ import annotations

import html
import os
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from hotline.alerts.channels.base import Channel, DeliveryError, Notification
from hotline.errors import ConfigError

DEFAULT_DASHBOARD = "http://127.0.0.1:5006/"
KNOWN = {"to", "from", "smtp_host", "smtp_port", "starttls", "username", "password_env",
         "dashboard_url"}


def _check_address(a: str) -> str:
    if not isinstance(a, str) or "@" not in a or any(c in a for c in "\r\n<>,; "):
        raise ConfigError(f"e-mail settings: {a!r} is not a plain e-mail address")
    return a


class EmailChannel(Channel):
    name = "email"

    @classmethod
    def validate_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - KNOWN
        if unknown:
            raise ConfigError(f"e-mail settings: unknown key(s) {sorted(unknown)}; "
                              f"known: {', '.join(sorted(KNOWN))}")
        to = settings.get("to")
        if not to:
            raise ConfigError("e-mail settings: 'to' (recipient addresses) is required")
        to = [to] if isinstance(to, str) else list(to)
        out = dict(settings)
        out["to"] = [_check_address(a) for a in to]
        out["from"] = _check_address(settings.get("from", "hotline@localhost"))
        out["smtp_host"] = str(settings.get("smtp_host", "localhost"))
        out["smtp_port"] = int(settings.get("smtp_port", 25))
        out["starttls"] = bool(settings.get("starttls", False))
        if "password" in settings:
            raise ConfigError("e-mail settings: do not store the SMTP password; put it in an "
                              "environment variable and give its name as password_env")
        url = str(settings.get("dashboard_url", DEFAULT_DASHBOARD))
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"e-mail settings: dashboard_url must be http(s), got {url!r}")
        out["dashboard_url"] = url
        return out

    def link(self, alert_id: str) -> str:
        return f"{self.subscription.settings['dashboard_url']}?alert={quote(alert_id)}"

    def build(self, note: Notification) -> EmailMessage:
        s = self.subscription.settings
        msg = EmailMessage()
        msg["Subject"] = f"[hotline] {note.title()}"
        msg["From"] = s["from"]
        msg["To"] = ", ".join(s["to"])
        msg["Message-ID"] = f"<{note.message_id}.{note.sub_id}@hotline>"
        msg["X-Hotline-Idempotency-Key"] = note.message_id
        msg["X-Hotline-Subscription"] = note.sub_id
        shown = sorted(note.alerts, key=lambda a: -(a.significance or 0.0))[:25]
        lines = [note.title(), ""]
        rows = []
        for a in shown:
            when = datetime.fromtimestamp(a.created, tz=UTC).strftime("%H:%M:%S")
            z = "" if a.significance is None else f"{a.significance:.2f}"
            p = "" if a.p_value is None else f"{a.p_value:.2e}"
            lines.append(f"{when}  {a.kind:7s} {a.rule:24s} run {a.run} ls {a.lumi} "
                         f"event {a.event}  p={p} Z={z}  {self.link(a.id)}")
            rows.append(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in
                                 (when, a.kind, a.rule, a.run, a.lumi, a.event, p, z))
                + f'<td><a href="{html.escape(self.link(a.id))}">open</a></td></tr>')
        if len(note.alerts) > len(shown):
            lines.append(f"... and {len(note.alerts) - len(shown)} more (see the dashboard)")
        lines += ["", f"Dashboard: {s['dashboard_url']}",
                  f"Subscription {note.sub_id}; idempotency key {note.message_id}"]
        msg.set_content("\n".join(lines))
        more = (f"<p>... and {len(note.alerts) - len(shown)} more.</p>"
                if len(note.alerts) > len(shown) else "")
        msg.add_alternative(
            f"<html><body><h3>{html.escape(note.title())}</h3>"
            "<table border='1' cellpadding='3'><tr><th>time (UTC)</th><th>kind</th>"
            "<th>rule</th><th>run</th><th>ls</th><th>event</th><th>p</th><th>Z</th><th></th>"
            f"</tr>{''.join(rows)}</table>{more}"
            f"<p><a href=\"{html.escape(s['dashboard_url'])}\">Hotline dashboard</a></p>"
            f"<p style='color:gray'>subscription {html.escape(note.sub_id)}</p></body></html>",
            subtype="html")
        return msg

    def send(self, note: Notification, timeout: float) -> None:
        s = self.subscription.settings
        msg = self.build(note)
        where = f"SMTP {s['smtp_host']}:{s['smtp_port']}"
        try:
            with smtplib.SMTP(s["smtp_host"], s["smtp_port"], timeout=timeout) as smtp:
                if s.get("starttls"):
                    smtp.starttls()
                if s.get("username"):
                    pw = os.environ.get(s.get("password_env", ""), "")
                    smtp.login(s["username"], pw)
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError(f"{where}: login refused for {s.get('username')!r}",
                                retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where}: recipients refused: {sorted(exc.recipients)}",
                                retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where}: {exc.smtp_code} {exc.smtp_error!r}",
                                retryable=exc.smtp_code < 500) from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from None
