"""The circuit's e-mails: each routed request tells its addressee, each avis its référent.

A message holds no personal data beyond what its addressee may see: the request's number,
its types, its state, the step and choice, and a link to the request (the page shows the
rest to who may see it). ``Mail`` objects are built inside the transaction and written in
it (``circuit.mailing.stage``: the outbox), then handed over once it commits: to the task
queue (the desk's Huey, task ``circuit.send_mail``, retried ``QUEUE_RETRIES`` times
``QUEUE_RETRY_DELAY`` seconds apart) which a ``forms-service worker`` runs (``serve``
starts one); logged by request id and address count only, never the addresses.

Transport (settings): ``SMTP_HOST`` set → SMTP (``SMTP_PORT``, ``SMTP_USER`` /
``SMTP_PASSWORD``, ``SMTP_STARTTLS``; port 465 is implicit TLS); unset → one ``.eml`` file
per message under ``<var>/outbox/``, and the pages say so (``outbox_mode``).
"""

from __future__ import annotations

import base64
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from forms_service.config import Settings
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

#: The queue task's retries and the delay between them.
QUEUE_RETRIES = 4
QUEUE_RETRY_DELAY = 3
#: The right-hand side of the messages' ``Message-ID``.
MESSAGE_ID_DOMAIN = "rsa-formulaires"


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message (the printed fiche a structure without an account gets)."""
    filename: str
    mimetype: str
    content: bytes


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str
    #: What the message is about, for the log: ``demande:<id>``.
    about: str
    #: Path of the page to link (``/correspondant/demandes/3``), made absolute with PUBLIC_URL.
    link: str = ""
    kind: str = field(default="info")
    #: Chosen once, when the message is written to the outbox, so that a message sent
    #: again (a delivery that died after the server took it) carries the same
    #: ``Message-ID`` and the receiving side can tell it is the same message.
    message_id: str = ""
    attachments: tuple[Attachment, ...] = ()


def outbox_mode(settings: Settings) -> bool:
    """True when no SMTP server is configured: messages go to ``<var>/outbox/``."""
    return not settings.smtp_host


def outbox_dir(settings: Settings) -> Path:
    return Path(settings.var_dir) / "outbox"


def build(settings: Settings, mail: Mail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = mail.message_id or new_message_id()
    body = mail.body
    if mail.link:
        body += f"\n\nPour la consulter : {settings.public_url.rstrip('/')}{mail.link}\n"
    body += ("\n--\nService des formulaires RSA — " + settings.departement_name +
             "\nMessage automatique : merci de ne pas y répondre.\n")
    msg.set_content(body)
    for a in mail.attachments:
        maintype, _, subtype = a.mimetype.partition("/")
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def new_message_id() -> str:
    return make_msgid(domain=MESSAGE_ID_DOMAIN)


def _send_smtp(settings: Settings, msg: EmailMessage) -> None:
    port = settings.smtp_port or 25
    if port == 465:
        with smtplib.SMTP_SSL(settings.smtp_host, port, timeout=10,
                              context=ssl.create_default_context()) as smtp:
            _login_and_send(settings, smtp, msg)
        return
    with smtplib.SMTP(settings.smtp_host, port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        _login_and_send(settings, smtp, msg)


def _login_and_send(settings: Settings, smtp: smtplib.SMTP, msg: EmailMessage) -> None:
    if settings.smtp_user:
        smtp.login(settings.smtp_user, settings.smtp_password or "")
    smtp.send_message(msg)


def _write_eml(settings: Settings, msg: EmailMessage) -> Path:
    folder = outbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{msg['Message-ID'].strip('<>').split('@')[0]}.eml"
    path = folder / name
    tmp = path.with_suffix(".part")
    tmp.write_bytes(msg.as_bytes())
    tmp.replace(path)
    return path


def deliver(settings: Settings, mail: Mail) -> None:
    """Send one message (SMTP, or an .eml file); raises on failure (the queue retries)."""
    if not mail.to:
        log.info("mail_no_addressee", about=mail.about, kind=mail.kind)
        return
    msg = build(settings, mail)
    if outbox_mode(settings):
        path = _write_eml(settings, msg)
        log.info("mail_written", about=mail.about, kind=mail.kind, recipients=len(mail.to),
                 file=path.name)
    else:
        _send_smtp(settings, msg)
        log.info("mail_sent", about=mail.about, kind=mail.kind, recipients=len(mail.to))


def payload(mail: Mail) -> dict:
    """What the queue's task carries (JSON)."""
    return {"to": list(mail.to), "subject": mail.subject, "body": mail.body,
            "about": mail.about, "link": mail.link, "kind": mail.kind,
            "message_id": mail.message_id or new_message_id(),
            "attachments": [{"filename": a.filename, "mimetype": a.mimetype,
                             "content": base64.b64encode(a.content).decode("ascii")}
                            for a in mail.attachments]}


__all__ = ["Mail", "Attachment", "deliver", "payload", "outbox_mode", "outbox_dir"]
