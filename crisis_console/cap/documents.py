"""CAP 1.2 messages: their parts as plain data, and their XML.

The element order is the OASIS schema's (``schema/cap12.xsd``); times are written with a
numeric offset (``2026-11-24T10:00:00-00:00``) because the schema's pattern refuses ``Z``.
Pure Python over lxml: no Flask, no Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11 = "urn:oasis:names:tc:emergency:cap:1.1"
#: Characters CAP allows in identifiers and senders (no spaces, commas, ``<`` or ``&``).
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._:@/+-]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def cap_time(moment: datetime) -> str:
    """Format a moment as CAP wants it: whole seconds in UTC, written ``-00:00``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


def safe_id(text: str) -> str:
    """Return ``text`` with the characters CAP forbids in identifiers replaced by ``-``."""
    return _UNSAFE_ID.sub("-", text) or "-"


@dataclass(frozen=True)
class Reference:
    """An earlier message named in ``references``."""

    sender: str
    identifier: str
    sent: str

    def text(self) -> str:
        """Return the ``sender,identifier,sent`` triplet."""
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True)
class Info:
    """One ``<info>`` block: the hazard in one language."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    area_desc: str
    response_types: tuple[str, ...] = ()
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: str = ""
    expires: str = ""
    sender_name: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    web: str = ""
    contact: str = ""
    #: ``(valueName, value)`` pairs naming the area in a code system, e.g. ``("ZIP", "02128")``.
    geocodes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Message:
    """One CAP alert message."""

    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    infos: tuple[Info, ...]
    scope: str = "Public"
    note: str = ""
    references: tuple[Reference, ...] = ()

    def reference(self) -> Reference:
        """Return how later messages name this one."""
        return Reference(self.sender, self.identifier, self.sent)


def to_xml(message: Message) -> bytes:
    """Return the message as a CAP 1.2 XML document (UTF-8, with declaration)."""
    root = etree.Element(f"{{{CAP12}}}alert", nsmap={None: CAP12})
    _add(root, "identifier", message.identifier)
    _add(root, "sender", message.sender)
    _add(root, "sent", message.sent)
    _add(root, "status", message.status)
    _add(root, "msgType", message.msg_type)
    _add(root, "scope", message.scope)
    _add(root, "note", message.note)
    _add(root, "references", " ".join(ref.text() for ref in message.references))
    for info in message.infos:
        _add_info(root, info)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _add_info(root: etree._Element, info: Info) -> None:
    element = etree.SubElement(root, f"{{{CAP12}}}info")
    _add(element, "language", info.language)
    for category in info.categories:
        _add(element, "category", category)
    _add(element, "event", info.event)
    for response in info.response_types:
        _add(element, "responseType", response)
    _add(element, "urgency", info.urgency)
    _add(element, "severity", info.severity)
    _add(element, "certainty", info.certainty)
    for name, value in info.event_codes:
        code = etree.SubElement(element, f"{{{CAP12}}}eventCode")
        _add(code, "valueName", name)
        _add(code, "value", value)
    _add(element, "effective", info.effective)
    _add(element, "expires", info.expires)
    _add(element, "senderName", info.sender_name)
    _add(element, "headline", info.headline)
    _add(element, "description", info.description)
    _add(element, "instruction", info.instruction)
    _add(element, "web", info.web)
    _add(element, "contact", info.contact)
    area = etree.SubElement(element, f"{{{CAP12}}}area")
    _add(area, "areaDesc", info.area_desc)
    for name, value in info.geocodes:
        geocode = etree.SubElement(area, f"{{{CAP12}}}geocode")
        _add(geocode, "valueName", name)
        _add(geocode, "value", value)


def _add(parent: etree._Element, name: str, text: str) -> None:
    """Append ``<name>text</name>``; optional elements with no text are left out."""
    if text:
        etree.SubElement(parent, f"{{{CAP12}}}{name}").text = xml_text(text)


def xml_text(text: str) -> str:
    """Drop the control characters XML 1.0 cannot carry (lxml refuses them)."""
    return _NOT_XML.sub("", text)
