"""Reading a posted CAP 1.1 or 1.2 alert safely, and what it asks the console to do.

The XML is parsed with entities left unresolved, no DTD and no network, and any document
type declaration is refused, so XXE and entity-expansion ("billion laughs") attacks have
nothing to work with. The alert is then validated against the OASIS schema of its
version (``schema/cap11.xsd``, ``schema/cap12.xsd``). Every refusal is a
:class:`CapRejected` with an HTTP status, a code, a message and the element at fault.
Pure Python over lxml: no Flask, no Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from crisis_console.cap import hazards
from crisis_console.cap.documents import CAP11, CAP12

SCHEMAS = {CAP12: "cap12.xsd", CAP11: "cap11.xsd"}
VERSIONS = {CAP12: "1.2", CAP11: "1.1"}
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
#: The longest a posted alert may be (NWS alerts with polygons are a few tens of kB).
MAX_BYTES = 1024 * 1024
NAME_LIMIT = 120
AREA_LIMIT = 80
AREAS_MAX = 50
DETAIL_LIMIT = 4000


class CapRejected(Exception):
    """A posted alert that is refused: ``status`` is 400 (unreadable) or 422 (unusable)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class InboundInfo:
    """The parts of one ``<info>`` block the console uses."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    response_types: tuple[str, ...]
    event_codes: tuple[tuple[str, str], ...]
    parameters: tuple[tuple[str, str], ...]
    headline: str
    description: str
    instruction: str
    sender_name: str
    web: str
    expires: str
    area_descs: tuple[str, ...]


@dataclass(frozen=True)
class InboundAlert:
    """A valid CAP alert as posted."""

    version: str
    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    references: tuple[tuple[str, str, str], ...]
    infos: tuple[InboundInfo, ...]

    def summary(self) -> dict[str, str]:
        """Return the fields that name the alert in answers and the audit trail."""
        return {
            "identifier": self.identifier,
            "sender": self.sender,
            "sent": self.sent,
            "status": self.status,
            "msg_type": self.msg_type,
            "version": self.version,
        }


def parse(data: bytes) -> InboundAlert:
    """Parse and validate a posted alert.

    Raises:
        CapRejected: the body is empty, not well-formed, declares a DTD, is not a CAP 1.1
            or 1.2 ``<alert>``, or breaks its schema.
    """
    if not data.strip():
        raise CapRejected(400, "empty_body", "The body is empty: post one CAP <alert> document.", "body")
    if len(data) > MAX_BYTES:
        raise CapRejected(413, "too_large", f"A CAP alert may be at most {MAX_BYTES} bytes.", "body")
    root = _parse_xml(data)
    namespace = etree.QName(root).namespace or ""
    if namespace not in SCHEMAS or etree.QName(root).localname != "alert":
        raise CapRejected(
            422,
            "wrong_namespace",
            f"Expected a CAP 1.1 or 1.2 <alert> (namespace {CAP12}), got <{etree.QName(root).localname}>"
            + (f" in namespace {namespace}." if namespace else " without a namespace."),
            "alert",
        )
    _validate(root, namespace)
    return _read_alert(root, namespace)


def _parse_xml(data: bytes) -> etree._Element:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise CapRejected(400, "bad_xml", f"The body is not well-formed XML: {exc}", "body") from None
    if root is None:
        raise CapRejected(400, "bad_xml", "The body is not well-formed XML.", "body")
    if root.getroottree().docinfo.doctype or _has_entities(root):
        raise CapRejected(
            400,
            "dtd_forbidden",
            "Document type declarations and entities are not accepted in CAP alerts.",
            "body",
        )
    return root


def _has_entities(root: etree._Element) -> bool:
    return any(isinstance(node, etree._Entity) for node in root.iter())


def _validate(root: etree._Element, namespace: str) -> None:
    # A fresh schema object per call: an lxml validator is not safe to share between threads.
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_DIR / SCHEMAS[namespace])))
    if schema.validate(root):
        return
    error = schema.error_log.filter_from_errors()[0] if schema.error_log.filter_from_errors() else None
    text = re.sub(r"\{[^}]*\}", "", error.message if error else "the document breaks the schema")
    element = re.search(r"Element '([^']+)'", text)
    raise CapRejected(
        422,
        "invalid_cap",
        f"Not valid CAP {VERSIONS[namespace]}"
        + (f" (line {error.line})" if error and error.line else "")
        + f": {text.rstrip('.')}.",
        element.group(1) if element else "alert",
    )


def _read_alert(root: etree._Element, namespace: str) -> InboundAlert:
    ns = {"c": namespace}

    def text(element: etree._Element, path: str) -> str:
        found = element.find(path, ns)
        return (found.text or "").strip() if found is not None else ""

    references = tuple(
        tuple(item.split(",", 2)) for item in text(root, "c:references").split() if item.count(",") == 2
    )
    infos = tuple(
        InboundInfo(
            language=text(info, "c:language") or "en-US",
            categories=tuple((c.text or "").strip() for c in info.findall("c:category", ns)),
            event=text(info, "c:event"),
            urgency=text(info, "c:urgency"),
            severity=text(info, "c:severity"),
            certainty=text(info, "c:certainty"),
            response_types=tuple((r.text or "").strip() for r in info.findall("c:responseType", ns)),
            event_codes=_pairs(info, "c:eventCode", ns),
            parameters=_pairs(info, "c:parameter", ns),
            headline=text(info, "c:headline"),
            description=text(info, "c:description"),
            instruction=text(info, "c:instruction"),
            sender_name=text(info, "c:senderName"),
            web=text(info, "c:web"),
            expires=text(info, "c:expires"),
            area_descs=tuple(text(area, "c:areaDesc") for area in info.findall("c:area", ns)),
        )
        for info in root.findall("c:info", ns)
    )
    return InboundAlert(
        version=VERSIONS[namespace],
        identifier=text(root, "c:identifier"),
        sender=text(root, "c:sender"),
        sent=text(root, "c:sent"),
        status=text(root, "c:status"),
        msg_type=text(root, "c:msgType"),
        scope=text(root, "c:scope"),
        references=references,  # type: ignore[arg-type]
        infos=infos,
    )


def _pairs(element: etree._Element, path: str, ns: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            (pair.findtext("c:valueName", "", ns) or "").strip(),
            (pair.findtext("c:value", "", ns) or "").strip(),
        )
        for pair in element.findall(path, ns)
    )


# --- what the alert asks for --------------------------------------------------------------


def ignore_reason(alert: InboundAlert) -> str | None:
    """Return why a valid alert opens no event, or None when it should open one.

    CAP says recipients disregard ``Test`` (technical testing), ``Draft`` (not to be acted
    on) and ``System`` messages; ``Cancel``, ``Ack`` and ``Error`` end or answer earlier
    messages rather than announce a hazard; an all-clear announces that a hazard is over.
    A manager stands events down: nothing here closes one by itself.
    """
    if alert.status in ("Test", "Draft", "System"):
        return f"status {alert.status}: CAP asks recipients to disregard {alert.status} messages."
    if alert.msg_type == "Cancel":
        return "msgType Cancel: it withdraws earlier alerts; stand down any event they opened by hand."
    if alert.msg_type in ("Ack", "Error"):
        return f"msgType {alert.msg_type}: it answers an earlier message and announces no hazard."
    info = primary_info(alert)
    if info is not None and "AllClear" in info.response_types:
        return "responseType AllClear: the hazard is over, so there is nothing to open."
    return None


def primary_info(alert: InboundAlert) -> InboundInfo | None:
    """Return the info block to read: the first in English, else the first."""
    for info in alert.infos:
        if info.language.lower().startswith("en"):
            return info
    return alert.infos[0] if alert.infos else None


def draft_event(alert: InboundAlert, info: InboundInfo) -> tuple[dict[str, object], list[str]]:
    """Return the draft event ``{name, kind, severity, areas, details, exercise}`` and notes.

    The notes say how the hazard and severity were chosen, for the manager to check.
    """
    kind, why = hazards.hazard_for(
        event=info.event, headline=info.headline, event_codes=info.event_codes, parameters=info.parameters
    )
    notes = [f"hazard {kind}: {why}"]
    severity = hazards.SEVERITY_FROM_CAP.get(info.severity)
    if severity is None:
        severity = "moderate"
        notes.append(f"severity {info.severity or 'missing'} in the alert: set to moderate, check it")
    details = {
        "cap_sender": alert.sender,
        "cap_identifier": alert.identifier,
        "cap_sent": alert.sent,
        "cap_event": info.event,
        "cap_sender_name": info.sender_name,
        "cap_expires": info.expires,
        "cap_description": info.description,
        "cap_instruction": info.instruction,
    }
    if info.web.startswith(("http://", "https://")):
        details["cap_web"] = info.web
    return (
        {
            "name": _clip(_one_line(info.headline or info.event or alert.identifier), NAME_LIMIT),
            "kind": kind,
            "severity": severity,
            "areas": areas_from(info.area_descs),
            "details": {key: _clip(value, DETAIL_LIMIT) for key, value in details.items() if value},
            "exercise": alert.status == "Exercise",
        },
        notes,
    )


def areas_from(descriptions: tuple[str, ...]) -> list[str]:
    """Split ``areaDesc`` texts into short area names (NWS separates zones with ``;``)."""
    areas: list[str] = []
    for description in descriptions:
        for part in description.split(";"):
            pieces = part.split(",") if len(_one_line(part)) > AREA_LIMIT else [part]
            for piece in pieces:
                name = _clip(_one_line(piece), AREA_LIMIT)
                if name and name not in areas:
                    areas.append(name)
    return areas[:AREAS_MAX]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
