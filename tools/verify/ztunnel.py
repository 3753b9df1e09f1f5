"""ztunnel's logs: every format from Istio 1.18's spans to 1.31's access log, and what proves HBONE."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from tools.verify.mesh import HBONE_PORT, PRODUCTPAGE_PORT

# --- ztunnel logs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZtunnelEvent:
    """One connection as a ztunnel logged it, whatever the log format of its Istio version."""

    direction: Literal["inbound", "outbound"]
    # The address the client asked for (HBONE :authority / CONNECT target / `proxy to X`).
    target: str | None
    # Outbound: where the connection went (HBONE: <peer ztunnel or waypoint>:15008). Inbound: where it arrived.
    via: str | None
    hbone: bool
    src_ip: str | None = None
    src_identity: str | None = None
    dst_workload: str | None = None
    error: str | None = None
    # "legacy" (span lines of Istio ≤ 1.21) or "access" (structured access log, 1.22 on).
    format: str = "access"
    pod: str | None = None
    line: str = ""

    @property
    def target_ip(self) -> str | None:
        return split_address(self.target)[0]

    @property
    def target_port(self) -> int | None:
        return split_address(self.target)[1]

    @property
    def via_ip(self) -> str | None:
        return split_address(self.via)[0]

    @property
    def via_port(self) -> int | None:
        return split_address(self.via)[1]

    def describe(self) -> str:
        where = f"[{self.pod}] " if self.pod else ""
        source = self.src_ip or "?"
        if not self.hbone:
            tunnel = " (plain TCP)"
        elif self.direction == "inbound":
            tunnel = " (HBONE CONNECT)"
        else:
            tunnel = f" via HBONE {self.via}" if self.via else " (HBONE)"
        failed = f" FAILED: {self.error}" if self.error else ""
        return f"{where}{self.direction} {source} -> {self.target}{tunnel}{failed}"


def split_address(address: str | None) -> tuple[str | None, int | None]:
    """`10.0.0.1:9080` → ("10.0.0.1", 9080); `[fd00::1]:9080` → ("fd00::1", 9080)."""
    if not address:
        return None, None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address.strip("[]"), None
    return host.strip("[]"), int(port)


_KUBECTL_PREFIX = re.compile(r"^\[pod/(?P<pod>[^/\]]+)/[^\]]*\]\s?")
_ACCESS = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\S+)\s+(?P<level>[A-Za-z]+)\s+access\s+(?P<message>connection \w+)\s+(?P<fields>.*)$")
_FIELD = re.compile(r'(?P<key>[\w.]+)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')
_LEGACY = re.compile(
    r"^(?:(?P<ts>\d{4}-\d\d-\d\dT\S+)\s+)?(?P<level>TRACE|DEBUG|INFO|WARN|ERROR)\s+(?P<spans>\S.*\})\s*:\s+"
    r"(?P<module>(?i:ztunnel::proxy::\w+)):\s+(?P<message>.*)$")
_SPAN = re.compile(r"(?P<name>inbound|outbound)\{(?P<fields>[^}]*)\}")
_CONNECT = re.compile(r"^got CONNECT request to (?P<target>\S+)", re.IGNORECASE)
_PROXY_HBONE = re.compile(r"^proxy(?:ing)? to (?P<target>\S+) using HBONE via (?P<via>\S+)", re.IGNORECASE)
_PROXY_TCP = re.compile(r"^proxy(?:ing)? to (?P<target>\S+) using TCP via (?P<via>\S+)", re.IGNORECASE)
_FAST_PATH = re.compile(r"^proxy(?:ing)? to (?P<target>\S+) using node local fast path", re.IGNORECASE)
_FAILED = re.compile(r"^failed\b.*?\berr=(?P<error>.*)$", re.IGNORECASE)
_RBAC_REJECTED = re.compile(r"^RBAC rejected\b.*$", re.IGNORECASE)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _fields(text: str) -> dict[str, str]:
    return {m["key"]: _unquote(m["value"]) for m in _FIELD.finditer(text)}


def _strip_prefix(line: str) -> tuple[str | None, str]:
    match = _KUBECTL_PREFIX.match(line)
    if match is None:
        return None, line
    return match["pod"], line[match.end():]


def parse_ztunnel_line(line: str) -> tuple[ZtunnelEvent | None, str | None, str | None]:
    """(event, legacy span id, legacy error) for one log line; (None, ...) when the line is not a connection."""
    raw = line.rstrip("\n")
    pod, text = _strip_prefix(raw.strip())
    access = _ACCESS.match(text)
    if access is not None:
        if access["message"] == "connection opened":  # debug level: the "connection complete" line follows
            return None, None, None
        f = _fields(access["fields"])
        direction = f.get("direction")
        if direction not in ("inbound", "outbound"):
            return None, None, None
        hbone_addr = f.get("dst.hbone_addr")
        event = ZtunnelEvent(
            direction=direction,  # type: ignore[arg-type]
            target=hbone_addr or f.get("dst.addr"),
            via=f.get("dst.addr") if hbone_addr else None,
            hbone=hbone_addr is not None,
            src_ip=split_address(f.get("src.addr"))[0],
            src_identity=f.get("src.identity"),
            dst_workload=f.get("dst.workload"),
            error=f.get("error") or None,
            format="access", pod=pod, line=raw)
        return event, None, None
    legacy = _LEGACY.match(text)
    if legacy is None:
        return None, None, None
    spans = list(_SPAN.finditer(legacy["spans"]))
    if not spans:
        return None, None, None
    span = spans[-1]
    span_fields = _fields(span["fields"])
    span_id = span_fields.get("id")
    message = legacy["message"]
    failed = _FAILED.match(message)
    if failed is not None:
        return None, span_id, failed["error"].strip()
    if _RBAC_REJECTED.match(message):
        return None, span_id, message.strip()
    base = {"format": "legacy", "pod": pod, "line": raw}
    if span["name"] == "inbound":
        connect = _CONNECT.match(message)
        if connect is None:
            return None, span_id, None
        return ZtunnelEvent("inbound", connect["target"], None, True, span_fields.get("peer_ip"),
                            span_fields.get("peer_id"), **base), span_id, None  # type: ignore[arg-type]
    for pattern, hbone in ((_PROXY_HBONE, True), (_PROXY_TCP, False)):
        match = pattern.match(message)
        if match is not None:
            return ZtunnelEvent("outbound", match["target"], match["via"], hbone, **base), span_id, None  # type: ignore[arg-type]
    fast = _FAST_PATH.match(message)
    if fast is not None:
        return ZtunnelEvent("outbound", fast["target"], None, False, **base), span_id, None  # type: ignore[arg-type]
    return None, span_id, None


def parse_ztunnel_logs(text: str | Iterable[str]) -> list[ZtunnelEvent]:
    """Every connection in `kubectl logs -l app=ztunnel [--prefix]` output, any supported Istio format.

    Legacy logs report a failure on a later line of the same span (`failed dur=… err=…`): it is attached to the
    connection that span opened.
    """
    lines = text.splitlines() if isinstance(text, str) else text
    events: list[ZtunnelEvent] = []
    by_span: dict[tuple[str | None, str], int] = {}
    for line in lines:
        event, span_id, error = parse_ztunnel_line(line)
        pod = _strip_prefix(line.strip())[0]
        if event is not None:
            if span_id:
                by_span[(pod, span_id)] = len(events)
            events.append(event)
        elif error is not None and span_id and (pod, span_id) in by_span:
            index = by_span[(pod, span_id)]
            events[index] = replace(events[index], error=error)
    return events


@dataclass
class HboneEvidence:
    inbound: list[ZtunnelEvent]
    outbound: list[ZtunnelEvent]
    through_waypoint: list[ZtunnelEvent]
    rejected: list[ZtunnelEvent]

    @property
    def ok(self) -> bool:
        return bool(self.inbound) and bool(self.outbound)


def hbone_evidence(events: Iterable[ZtunnelEvent], target_ips: Iterable[str], client_ips: Iterable[str],
                   waypoint_ips: Iterable[str] = (), port: int = PRODUCTPAGE_PORT) -> HboneEvidence:
    """Sort the connections that prove the mesh carried the clients' requests to `target_ips`:`port`.

    inbound: a ztunnel accepted an HBONE CONNECT for a target pod on `port` (from a client, a waypoint, or a
    source the format does not name). outbound: a ztunnel sent a client's request for `port` through an HBONE
    tunnel on 15008, to the target pod or to a waypoint. Failed connections are never proof; connections a policy
    rejected are kept apart as evidence of enforcement.
    """
    targets, clients, waypoints = set(target_ips), set(client_ips), set(waypoint_ips)
    inbound, outbound, waypoint, rejected = [], [], [], []
    for e in events:
        if e.target_port != port:
            continue
        from_client = e.src_ip is None or e.src_ip in clients
        if e.error:
            if from_client and (e.target_ip in targets or e.via_ip in waypoints):
                rejected.append(e)
            continue
        if e.direction == "inbound" and e.hbone and e.target_ip in targets and (
                from_client or e.src_ip in waypoints):
            inbound.append(e)
        elif e.direction == "outbound" and e.hbone and e.via_port == HBONE_PORT and from_client:
            if e.via_ip in waypoints:
                waypoint.append(e)
                outbound.append(e)
            elif e.target_ip in targets:
                outbound.append(e)
    return HboneEvidence(inbound, outbound, waypoint, rejected)


