"""tools/verify.py: the ztunnel log parser on recorded lines of several Istio versions, and the whole verify flow
against a fake cluster that replays recorded kubectl/curl/HTTP outputs."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import stat
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tools import verify
from tools.verify import HttpResult, Result, hbone_evidence, parse_ztunnel_logs
from tools.verify import cli as verify_cli
from tools.verify.mesh import PROMETHEUS_QUERY, SPLIT_REQUESTS, split_bounds

FIXTURES = Path(__file__).parent / "fixtures"

# The recorded scenario: kind, productpage on worker2, the clients on worker, a waypoint beside them.
PRODUCTPAGE_IP = "10.244.2.8"
SLEEP_IP = "10.244.1.4"
NOTSLEEP_IP = "10.244.1.5"
WAYPOINT_IP = "10.244.1.9"
CLIENT_IPS = [SLEEP_IP, NOTSLEEP_IP]


def log(name: str) -> str:
    return (FIXTURES / f"ztunnel-{name}.log").read_text()


# --- the parser ----------------------------------------------------------------------------------------------

def test_legacy_span_lines_of_istio_1_18() -> None:
    events = parse_ztunnel_logs(log("1.18"))
    assert {e.format for e in events} == {"legacy"}
    inbound = [e for e in events if e.direction == "inbound"]
    assert [(e.src_ip, e.target, e.src_identity) for e in inbound] == [
        (SLEEP_IP, f"{PRODUCTPAGE_IP}:9080", "spiffe://cluster.local/ns/default/sa/sleep"),
        (NOTSLEEP_IP, f"{PRODUCTPAGE_IP}:9080", "spiffe://cluster.local/ns/default/sa/notsleep"),
    ]
    assert all(e.hbone and e.pod == "ztunnel-m2vjx" for e in inbound)
    outbound = [e for e in events if e.direction == "outbound"]
    assert [(e.target, e.via, e.hbone) for e in outbound] == [
        (f"{PRODUCTPAGE_IP}:9080", f"{PRODUCTPAGE_IP}:15008", True),
        ("10.244.1.6:9080", None, False),  # node local fast path: no tunnel
        (f"{PRODUCTPAGE_IP}:9080", f"{PRODUCTPAGE_IP}:15008", True),
        ("10.244.1.6:9080", "10.244.1.6:15008", True),
    ]
    assert not any(e.error for e in events)
    # xds lines, "complete dur=" lines and the listener line are not connections
    assert len(events) == 6


def test_legacy_lines_with_a_proxy_span_and_failures_of_istio_1_20() -> None:
    events = parse_ztunnel_logs(log("1.20"))
    assert len(events) == 4 and {e.format for e in events} == {"legacy"}
    outbound = [e for e in events if e.direction == "outbound"]
    assert [e.error for e in outbound] == [None, "http status: 401 Unauthorized"]  # "failed" joins its span
    inbound = {e.src_ip: e for e in events if e.direction == "inbound"}
    assert inbound[SLEEP_IP].error is None
    assert inbound[NOTSLEEP_IP].error.startswith("RBAC rejected")  # type: ignore[union-attr]


def test_structured_access_log_of_istio_1_22_with_unquoted_values() -> None:
    events = parse_ztunnel_logs(log("1.22"))
    assert {e.format for e in events} == {"access"} and len(events) == 5
    first = events[0]
    assert (first.direction, first.src_ip, first.target, first.via, first.hbone) == (
        "outbound", SLEEP_IP, f"{PRODUCTPAGE_IP}:9080", f"{PRODUCTPAGE_IP}:15008", True)
    assert first.dst_workload == "productpage-v1-77489ccb5f-pjbq5"
    assert first.src_identity == "spiffe://cluster.local/ns/default/sa/sleep"
    assert first.pod == "ztunnel-4fzqk"


def test_structured_access_log_with_policy_rejections_and_plain_tcp() -> None:
    events = parse_ztunnel_logs(log("1.26-denied"))
    rejected = [e for e in events if e.error]
    assert [(e.direction, e.src_ip) for e in rejected] == [("outbound", NOTSLEEP_IP), ("inbound", NOTSLEEP_IP)]
    assert rejected[1].error == "connection closed due to policy rejection: allow policies exist, but none allowed"
    plain = events[-1]
    assert (plain.direction, plain.hbone, plain.target, plain.via) == ("inbound", False, f"{PRODUCTPAGE_IP}:9080",
                                                                       None)


def test_lines_without_kubectl_prefix_and_debug_opened_lines() -> None:
    waypoint = parse_ztunnel_logs(log("1.31-waypoint"))
    assert len(waypoint) == 3  # the debug "connection opened" line is not counted twice
    legacy = parse_ztunnel_logs(log("1.19-waypoint"))
    assert [e.pod for e in legacy] == [None, None]
    assert legacy[0].via == f"{WAYPOINT_IP}:15008" and legacy[0].target == "10.96.141.27:9080"


def test_ipv6_addresses_are_split() -> None:
    line = ('2025-01-01T00:00:00.000000Z\tinfo\taccess\tconnection complete\tsrc.addr=[fd00:10:244::4]:4000 '
            'dst.addr=[fd00:10:244::8]:15008 dst.hbone_addr=[fd00:10:244::8]:9080 direction="inbound"')
    [event] = parse_ztunnel_logs(line)
    assert (event.src_ip, event.target_ip, event.target_port, event.via_port) == (
        "fd00:10:244::4", "fd00:10:244::8", 9080, 15008)


@pytest.mark.parametrize("fixture", ["1.18", "1.20", "1.22", "1.26-denied", "1.31"])
def test_every_format_proves_inbound_and_outbound_hbone(fixture: str) -> None:
    found = hbone_evidence(parse_ztunnel_logs(log(fixture)), [PRODUCTPAGE_IP], CLIENT_IPS)
    assert found.ok
    assert all(e.target_ip == PRODUCTPAGE_IP and e.target_port == 9080 for e in found.inbound)
    assert all(e.via_port == 15008 for e in found.outbound)
    assert not found.through_waypoint


def test_details_traffic_and_plain_tcp_are_not_proof() -> None:
    # productpage -> details (another target) and the gateway's plain TCP inbound prove nothing about productpage
    found = hbone_evidence(parse_ztunnel_logs(log("1.24-plaintext")), [PRODUCTPAGE_IP], CLIENT_IPS)
    assert not found.inbound and not found.outbound and not found.ok
    found = hbone_evidence(parse_ztunnel_logs(log("1.22")), ["10.244.1.6"], CLIENT_IPS)
    assert not found.outbound  # the details call came from productpage, not from a client


def test_only_tunnels_on_the_hbone_port_count_as_outbound() -> None:
    line = ('2025-01-01T00:00:00.000000Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.4:4000 '
            'dst.addr=10.244.2.8:15001 dst.hbone_addr=10.244.2.8:9080 direction="outbound"')
    found = hbone_evidence(parse_ztunnel_logs(line), [PRODUCTPAGE_IP], CLIENT_IPS)
    assert not found.outbound
    found = hbone_evidence(parse_ztunnel_logs(line.replace(":15001", ":15008")), [PRODUCTPAGE_IP], CLIENT_IPS)
    assert len(found.outbound) == 1


def test_rejected_connections_are_kept_apart() -> None:
    found = hbone_evidence(parse_ztunnel_logs(log("1.26-denied")), [PRODUCTPAGE_IP], CLIENT_IPS)
    assert {e.src_ip for e in found.inbound + found.outbound} == {SLEEP_IP}
    assert len(found.rejected) == 2 and {e.src_ip for e in found.rejected} == {NOTSLEEP_IP}


@pytest.mark.parametrize(("fixture", "clients"), [("1.31-waypoint", 2), ("1.19-waypoint", 1)])
def test_waypoint_traversal_in_both_formats(fixture: str, clients: int) -> None:
    events = parse_ztunnel_logs(log(fixture))
    found = hbone_evidence(events, [PRODUCTPAGE_IP], CLIENT_IPS, [WAYPOINT_IP])
    assert found.ok and len(found.through_waypoint) == clients
    assert found.inbound[0].src_ip == WAYPOINT_IP
    without = hbone_evidence(events, [PRODUCTPAGE_IP], CLIENT_IPS)
    assert not without.outbound and not without.inbound  # unknown waypoint: neither hop counts


# --- a fake cluster ------------------------------------------------------------------------------------------

TITLE_PAGE = "<html><head>" + verify.TITLE + "</head><body>Bookinfo</body></html>"


def pod(name: str, app: str | None, ip: str, ready: bool = True, phase: str = "Running",
        reason: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "ready": ready, "restartCount": 4 if reason else 0,
                                 "state": {"waiting": {"reason": reason}} if reason else {"running": {}}}
    return {
        "metadata": {"name": name, "labels": {**({"app": app} if app else {}), **(labels or {})}},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [container]},
    }


def istio_pods() -> list[dict[str, Any]]:
    return [pod("istiod-5d8d9b7c5-abcde", "istiod", "10.244.0.5"),
            pod("istio-ingressgateway-6b7d8c9f4-wq5zt", "istio-ingressgateway", "10.244.1.7"),
            *[pod(f"ztunnel-{s}", "ztunnel", f"10.244.{i}.2") for i, s in enumerate(["4fzqk", "m2vjx", "x9q2w"])],
            *[pod(f"istio-cni-node-{s}", None, f"172.18.0.{i}", labels={"k8s-app": "istio-cni-node"})
              for i, s in enumerate(["aa1bb", "cc2dd", "ee3ff"], 2)]]


def app_pods() -> list[dict[str, Any]]:
    return [pod("productpage-v1-54bb874995-kzpnw", "productpage", PRODUCTPAGE_IP),
            pod("details-v1-65cfcf56f9-4kq8j", "details", "10.244.1.6"),
            pod("ratings-v1-7c9bd4b87f-9x7zq", "ratings", "10.244.2.9"),
            *[pod(f"reviews-v{v}-6b8c9d7f5{v}-r2d2c", "reviews", f"10.244.2.1{v}") for v in (1, 2, 3)],
            pod("sleep-7656cf8794-8q2vz", "sleep", SLEEP_IP),
            pod("notsleep-6f6b8f7c9d-x2lqv", "notsleep", NOTSLEEP_IP)]


def waypoint_pod() -> dict[str, Any]:
    return pod("waypoint-5d9c7b6f48-h7x2d", None, WAYPOINT_IP,
               labels={"gateway.networking.k8s.io/gateway-name": "waypoint"})


def curl_ok(body: str = TITLE_PAGE, status: int = 200) -> Result:
    return Result((), 0, f"{body}\n{verify.STATUS_MARK}{status}\n", "")


def curl_failed(code: int, message: str) -> Result:
    return Result((), code, f"\n{verify.STATUS_MARK}000\n",
                  f"curl: ({code}) {message}\ncommand terminated with exit code {code}\n")


RESET = curl_failed(56, "Recv failure: Connection reset by peer")
PRODUCTPAGE_URL = "http://productpage:9080/productpage"
INGRESS_URL = "http://istio-ingressgateway.istio-system/productpage"
HOST_URL = "http://localhost:8080/productpage"


# --- a fake Prometheus: ztunnel's series and the one form of PromQL the metric check sends ------------------------

OPENED, CLOSED = "istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total"
SUM_BY = re.compile(r"sum by \((\w+)\) \((\w+)\{(.*)\}\)")
MATCHER = re.compile(r'(\w+)(=~|!=|=)"((?:[^"\\]|\\.)*)"')


def sum_by(query: str, series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`sum by (label) (metric{matchers})` over raw series ({"__name__", labels, "value"}): =, != and =~ (anchored, as
    Prometheus anchors it), values unescaped as PromQL strings. Anything else fails the test: the fake answers only
    what it understands."""
    found = SUM_BY.fullmatch(query)
    assert found, f"the fake Prometheus cannot answer {query}"
    by, name, body = found.groups()
    found_matchers = MATCHER.findall(body)
    assert ",".join(f'{label}{op}"{value}"' for label, op, value in found_matchers) == body, body
    matchers = [(label, op, re.sub(r"\\(.)", r"\1", value)) for label, op, value in found_matchers]

    def matches(labels: dict[str, Any]) -> bool:
        return all(labels.get(label, "") == value if op == "=" else labels.get(label, "") != value if op == "!="
                   else re.fullmatch(value, labels.get(label, "")) is not None for label, op, value in matchers)

    sums: dict[str, float] = {}
    for one in series:
        if one["__name__"] == name and matches(one):
            sums[one.get(by, "")] = sums.get(one.get(by, ""), 0) + one["value"]
    return [{"metric": {by: key}, "value": [1700000000.0, str(value)]} for key, value in sums.items()]


def ztunnel_metrics(allowed: dict[str, int], waypoint: str | None = None, refused_at_l7: dict[str, int] | None = None,
                    refused_at_l4: dict[str, int] | None = None, unrefused: dict[str, int] | None = None,
                    namespace: str = "default") -> list[dict[str, Any]]:
    """The series ztunnel (release-1.31: src/proxy/metrics.rs, outbound.rs, inbound.rs) exports for calls to
    productpage, as Prometheus keeps them (the waypoint's own Envoy metrics are other series):
    - the client's ztunnel, reporter="source": the client as source_workload, productpage's Service as
      destination_service even through a waypoint (destination_workload is then the waypoint);
    - productpage's ztunnel, reporter="destination": the peer it saw as source (the waypoint, when one is in the path);
    - `allowed`: connections per client that reach productpage; `refused_at_l7`: through the waypoint, which refuses
      them (they open at L4 all the same); `refused_at_l4`: straight to productpage's pod, opened ("-") and then closed
      with DENY by its ztunnel, but for `unrefused` of them, which got through and closed normally."""
    service = f"{verify.PRODUCTPAGE}.{namespace}.svc.cluster.local"
    target = f"{verify.PRODUCTPAGE}-v1"
    series: list[dict[str, Any]] = []

    def add(metric: str, n: int, reporter: str, source: str, destination: str, flags: str = "-") -> None:
        if n:
            series.append({"__name__": metric, "reporter": reporter, "source_workload": source,
                           "source_workload_namespace": namespace,
                           "source_principal": f"spiffe://cluster.local/ns/{namespace}/sa/{source}",
                           "destination_service": service, "destination_workload": destination,
                           "destination_workload_namespace": namespace, "connection_security_policy": "mutual_tls",
                           "response_flags": flags, "value": n})

    for client, n in {**allowed, **(refused_at_l7 or {})}.items():
        for metric in (OPENED, CLOSED):
            add(metric, n, "source", client, waypoint or target)
    for client, n in allowed.items():
        for metric in (OPENED, CLOSED):
            add(metric, n, "destination", waypoint or client, target)
    for client, n in (refused_at_l4 or {}).items():
        through = (unrefused or {}).get(client, 0)
        add(OPENED, n, "source", client, target)
        add(OPENED, n, "destination", client, target)
        add(CLOSED, n - through, "destination", client, target, "DENY")
        add(CLOSED, through, "destination", client, target)
    return series


@dataclass
class FakeCluster:
    """Replays recorded outputs for the calls verify makes; records every call."""

    pods: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        "istio-system": istio_pods(), "default": app_pods()})
    labels: dict[str, dict[str, str]] = field(default_factory=lambda: {
        "default": {"istio.io/dataplane-mode": "ambient", "kubernetes.io/metadata.name": "default"}})
    curls: dict[tuple[str, ...], list[Result]] = field(default_factory=lambda: {
        ("sleep", PRODUCTPAGE_URL): [curl_ok()],
        ("notsleep", PRODUCTPAGE_URL): [curl_ok()],
        ("notsleep", verify.LOOP_URL): [curl_ok()],
        ("sleep", INGRESS_URL): [curl_ok()],
    })
    host: list[HttpResult] = field(default_factory=lambda: [HttpResult(HOST_URL, 200, TITLE_PAGE)])
    ztunnel_log: str = field(default_factory=lambda: log("1.22"))
    waypoint_log: str = ""
    pulumi: Result = Result((), 127, "", "pulumi: command not found")
    unreachable: bool = False
    # What Prometheus holds of ztunnel's series (ztunnel_metrics): the n-th snapshot after n retries' sleeps, the last
    # one from then on; none: Prometheus does not answer.
    metrics: list[list[dict[str, Any]]] = field(default_factory=list)
    # What each request of the split check's loop found on the page ("reviews-v1-", or "" for nothing).
    page_versions: list[str] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    kubeconfig_seen: list[tuple[str, str, int]] = field(default_factory=list)

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result:
        argv = tuple(argv)
        self.calls.append(argv)
        if argv[0] == "pulumi":
            return self.pulumi
        assert argv[0] == "kubectl", argv
        args = list(argv[1:])
        while args and args[0] in ("--kubeconfig", "--context"):
            if args[0] == "--kubeconfig" and Path(args[1]).exists():
                path = args[1]
                self.kubeconfig_seen.append((path, Path(path).read_text(), stat.S_IMODE(os.stat(path).st_mode)))
            args = args[2:]
        if self.unreachable:
            return Result(argv, 1, "", "The connection to the server 127.0.0.1:6443 was refused")
        verb = args[0]
        if verb == "get" and args[1] == "pods":
            namespace = args[args.index("-n") + 1]
            items = self.pods.get(namespace, [])
            if "-l" in args:
                key, value = args[args.index("-l") + 1].split("=")
                items = [p for p in items if p["metadata"]["labels"].get(key) == value]
            if "-o" in args and args[args.index("-o") + 1] == "jsonpath={.items[*].status.podIP}":
                return Result(argv, 0, " ".join(p["status"]["podIP"] for p in items))
            return Result(argv, 0, json.dumps({"items": items}))
        if verb == "get" and args[1] == "--raw":
            if not self.metrics:
                return Result(argv, 1, "", 'Error from server (ServiceUnavailable): no endpoints for "prometheus"')
            path, query = args[2].split("?query=", 1)
            assert path == PROMETHEUS_QUERY, path
            snapshot = self.metrics[min(len(self.sleeps), len(self.metrics) - 1)]
            result = sum_by(urllib.parse.unquote(query), snapshot)
            return Result(argv, 0, json.dumps({"status": "success", "data": {"result": result}}))
        if verb == "get" and args[1] == "namespace":
            return Result(argv, 0, json.dumps({"metadata": {"name": args[2], "labels": self.labels.get(args[2])}}))
        if verb == "exec" and args[-3:-1] == ["sh", "-c"]:
            return Result(argv, 0, "".join(f"{line}\n" for line in self.page_versions))
        if verb == "exec":
            client = args[args.index("-n") + 2].removeprefix("deploy/")
            # A call with another method than GET is its own recording: (client, url, method).
            curl_key = (client, args[-1], args[args.index("-X") + 1]) if "-X" in args else (client, args[-1])
            answers = self.curls.get(curl_key)
            if not answers:
                return Result(argv, 1, "", f'Error from server (NotFound): deployments.apps "{client}" not found')
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            return Result(argv, answer.returncode, answer.stdout, answer.stderr)
        if verb == "logs" and "app=ztunnel" in args:
            return Result(argv, 0, self.ztunnel_log)
        if verb == "logs":
            return Result(argv, 0, self.waypoint_log)
        raise AssertionError(f"unexpected kubectl call {argv}")

    def http_get(self, url: str, timeout: float = 10.0) -> HttpResult:
        self.calls.append(("GET", url))
        return self.host.pop(0) if len(self.host) > 1 else self.host[0]

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def kubectl_calls(self, verb: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == "kubectl" and verb in c]


@dataclass
class Run:
    code: int
    output: str
    report: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        [check] = [c for c in self.report["checks"] if c["name"] == name]
        return check

    def status(self) -> dict[str, str]:
        return {c["name"]: c["status"] for c in self.report["checks"]}


@pytest.fixture
def run_verify(tmp_path: Path) -> Iterator[Any]:
    def run(cluster: FakeCluster, *flags: str, host: bool = True) -> Run:
        report = tmp_path / "report.json"
        argv = ["--kubeconfig", "/tmp/kc", "--no-stack-outputs", "--json", str(report), *flags]
        if host:
            argv += ["--host-url", HOST_URL]
        out = io.StringIO()
        code = verify.main(argv, runner=cluster, out=out)
        return Run(code, out.getvalue(), json.loads(report.read_text()))
    yield run


ALL_CHECKS = ["pods-ready:istio-system", "pods-ready:default", "ambient-label", "curl:sleep", "curl:notsleep",
              "loop:notsleep", "ingress:in-cluster", "ingress:host", "ztunnel:hbone"]


# --- the whole flow ------------------------------------------------------------------------------------------

def test_all_checks_pass_on_a_healthy_mesh(run_verify: Any) -> None:
    cluster = FakeCluster()
    run = run_verify(cluster)
    assert run.code == 0 and run.report["ok"] and run.report["failed"] == []
    assert list(run.status()) == ALL_CHECKS and set(run.status().values()) == {"pass"}
    assert f"verify: OK - {len(ALL_CHECKS)} of {len(ALL_CHECKS)} checks" in run.output
    for name in ALL_CHECKS:
        assert f"PASS {name}:" in run.output
    assert run.output.count("8/8 pods Ready") == 2
    ztunnel = run.check("ztunnel:hbone")
    assert "inbound HBONE to productpage:9080: 2" in ztunnel["evidence"]
    assert "outbound via HBONE :15008: 2" in ztunnel["evidence"]
    assert not cluster.sleeps  # nothing had to be retried
    # every kubectl call carries the kubeconfig, and the logs are those of the requests just made
    assert all(c[1:3] == ("--kubeconfig", "/tmp/kc") for c in cluster.calls if c[0] == "kubectl")
    [logs] = cluster.kubectl_calls("logs")
    assert "--tail=-1" in logs and "--prefix" in logs and any(a.startswith("--since=") for a in logs)


def test_without_a_real_data_plane_every_traffic_check_skips_naming_why(run_verify: Any) -> None:
    """A cluster running a stand-in ztunnel: the pods and the label are still checked; nothing is sent through the
    mesh, and each skipped check says which image is missing."""
    cluster = FakeCluster()
    why = "docker.io/istio/ztunnel:1.31.1 is a readiness-only stand-in"
    run = run_verify(cluster, "--no-data-plane", why)
    assert run.code == 0
    statuses = run.status()
    assert list(statuses) == ALL_CHECKS
    assert {n for n, st in statuses.items() if st == "pass"} == {"pods-ready:istio-system", "pods-ready:default",
                                                                  "ambient-label"}
    for name in set(ALL_CHECKS) - {"pods-ready:istio-system", "pods-ready:default", "ambient-label"}:
        assert statuses[name] == "skip" and why in run.check(name)["summary"]
    assert not cluster.kubectl_calls("exec") and not cluster.kubectl_calls("logs")


def test_the_smoke_check_learns_of_a_stand_in_data_plane_from_the_environment(
        run_verify: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up` runs the smoke check, not the test tier: the tier's stand-in reason reaches it as an environment
    variable, the flag's default."""
    why = "docker.io/istio/ztunnel:1.31.1 is a readiness-only stand-in"
    monkeypatch.setenv(verify_cli.NO_DATA_PLANE_ENV, why)
    cluster = FakeCluster()
    statuses = run_verify(cluster, "--core").status()
    assert statuses["pods-ready:default"] == "pass" and statuses["curl:sleep"] == "skip"
    assert not cluster.kubectl_calls("exec")
    monkeypatch.delenv(verify_cli.NO_DATA_PLANE_ENV)
    assert run_verify(FakeCluster(), "--core").status()["curl:sleep"] == "pass"


def test_the_curl_commands_are_the_tutorials(run_verify: Any) -> None:
    cluster = FakeCluster()
    run_verify(cluster)
    execs = cluster.kubectl_calls("exec")
    assert {(c[c.index("-n") + 2], c[-1]) for c in execs} == {
        ("deploy/sleep", PRODUCTPAGE_URL), ("deploy/notsleep", PRODUCTPAGE_URL), ("deploy/sleep", INGRESS_URL),
        ("deploy/notsleep", verify.LOOP_URL)}
    # the tutorial's loop: ten requests from notsleep, to the page its single curl asks too
    assert sum(1 for c in execs if c[-1] == verify.LOOP_URL and "deploy/notsleep" in c) == 1 + verify.LOOP_REQUESTS
    assert all(c[c.index("--") + 1] == "curl" for c in execs)
    assert ("GET", HOST_URL) in cluster.calls


def test_a_pod_that_is_not_ready_fails_with_its_reason(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.pods["istio-system"][2] = pod("ztunnel-4fzqk", "ztunnel", "10.244.0.2", ready=False,
                                          reason="CrashLoopBackOff")
    run = run_verify(cluster, "--wait", "10")
    assert run.code == 1 and run.report["failed"] == ["pods-ready:istio-system"]
    check = run.check("pods-ready:istio-system")
    assert check["summary"] == "1 of 8 pods not Ready" and check["attempts"] == 3  # waited 10 s, every 5 s
    assert any("ztunnel-4fzqk" in e and "CrashLoopBackOff" in e for e in check["evidence"])
    assert "FAIL pods-ready:istio-system" in run.output and "hint: `kubectl get pods -n istio-system`" in run.output
    assert f"verify: FAILED - 1 of {len(ALL_CHECKS)} checks failed: pods-ready:istio-system" in run.output


def test_pods_that_become_ready_while_waiting_pass() -> None:
    cluster = FakeCluster()
    healthy = app_pods()
    cluster.pods["default"][0] = pod("productpage-v1-54bb874995-kzpnw", "productpage", PRODUCTPAGE_IP,
                                     ready=False, phase="Pending")
    original = cluster.run

    def run(argv: Sequence[str], timeout: float = 60.0) -> Result:
        if cluster.kubectl_calls("get"):  # from the second look on
            cluster.pods["default"] = healthy
        return original(argv, timeout)

    cluster.run = run  # type: ignore[method-assign]
    check = verify.Verifier(verify.Settings(), cluster, io.StringIO()).check_pods("default", verify.APP_WORKLOADS)
    assert check.status == "pass" and check.attempts == 2 and cluster.sleeps == [5.0]


def test_a_missing_workload_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.pods["default"] = [p for p in app_pods() if p["metadata"]["labels"]["app"] != "notsleep"]
    run = run_verify(cluster, "--wait", "0")
    assert run.code == 1
    assert run.check("pods-ready:default")["summary"] == "missing workloads: notsleep"


def test_an_empty_namespace_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.pods["istio-system"] = []
    run = run_verify(cluster, "--wait", "0")
    assert run.check("pods-ready:istio-system")["summary"] == "no pods in namespace istio-system"
    assert run.code == 1


def test_a_namespace_without_the_ambient_label_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.labels["default"] = {"kubernetes.io/metadata.name": "default"}
    run = run_verify(cluster)
    assert run.code == 1 and run.report["failed"] == ["ambient-label"]
    assert run.check("ambient-label")["evidence"] == ["labels: kubernetes.io/metadata.name=default"]


def test_sleep_that_cannot_reach_productpage_fails_after_retries(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("sleep", PRODUCTPAGE_URL)] = [curl_failed(7, "Failed to connect to productpage port 9080")]
    run = run_verify(cluster, "--attempts", "3", "--interval", "2")
    check = run.check("curl:sleep")
    assert run.code == 1 and "curl:sleep" in run.report["failed"]
    assert check["status"] == "fail" and check["attempts"] == 3
    assert "curl exit 7" in check["evidence"][0]
    assert cluster.sleeps.count(2.0) >= 2


def test_a_flaky_first_request_is_retried(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("sleep", PRODUCTPAGE_URL)] = [curl_failed(28, "Operation timed out"), curl_ok()]
    run = run_verify(cluster)
    assert run.code == 0 and run.check("curl:sleep")["attempts"] == 2


def test_a_page_without_the_title_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [curl_ok("upstream connect error", 503)]
    run = run_verify(cluster, "--attempts", "1")
    assert run.code == 1 and run.report["failed"] == ["curl:notsleep", "loop:notsleep"]  # the loop asks the same page
    assert "HTTP 503, no Bookinfo title" in run.check("curl:notsleep")["evidence"][0]


def test_a_client_that_does_not_exist_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    del cluster.curls[("notsleep", PRODUCTPAGE_URL)]
    run = run_verify(cluster, "--attempts", "1")
    assert run.check("curl:notsleep")["summary"] == "could not run curl in deploy/notsleep"
    assert run.code == 1


def test_notsleep_denied_as_expected_passes(run_verify: Any) -> None:
    cluster = FakeCluster(ztunnel_log=log("1.26-denied"))
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [RESET]
    run = run_verify(cluster, "--expect-denied", "notsleep")
    assert run.code == 0, run.output
    assert "denied as expected (connection reset" in run.check("curl:notsleep")["summary"]
    assert any(e.startswith("rejected by policy: 2 connections from notsleep")
               for e in run.check("ztunnel:hbone")["evidence"])


def test_exit_56_is_a_denial_whatever_curl_says() -> None:
    result = Result((), 56, f"\n{verify.STATUS_MARK}000\n",
                    "curl: (56) Failure when receiving data from the peer\ncommand terminated with exit code 56\n")
    outcome = verify._curl_outcome("notsleep", PRODUCTPAGE_URL, result)
    assert outcome.curl_exit == 56 and outcome.denied_l4 and not outcome.denied_l7
    timeout = verify._curl_outcome("notsleep", PRODUCTPAGE_URL, curl_failed(28, "Operation timed out"))
    assert not timeout.denied_l4


def test_an_l7_denial_by_the_waypoint_counts_as_denied(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [curl_ok("RBAC: access denied", 403)]
    run = run_verify(cluster, "--expect-denied", "notsleep")
    assert run.code == 0 and "HTTP 403 RBAC" in run.check("curl:notsleep")["summary"]


RBAC = curl_ok("RBAC: access denied", 403)
L7_PROBES = ("--expect-l7-denied", "sleep:DELETE", "--expect-l7-denied", "reviews-v1:GET")


def test_the_waypoints_l7_refusals_pass_as_the_guide_shows_them(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("sleep", PRODUCTPAGE_URL, "DELETE")] = [RBAC]
    cluster.curls[("reviews-v1", PRODUCTPAGE_URL, "GET")] = [RBAC]
    run = run_verify(cluster, *L7_PROBES)
    assert run.code == 0, run.output
    assert list(run.status())[-2:] == ["l7-denied:sleep:DELETE", "l7-denied:reviews-v1:GET"]
    assert "RBAC: access denied" in run.check("l7-denied:sleep:DELETE")["summary"]
    [delete] = [c for c in cluster.kubectl_calls("exec") if "deploy/sleep" in c and "-X" in c]
    assert delete[delete.index("-X") + 1] == "DELETE" and delete[-1] == PRODUCTPAGE_URL


def test_an_l7_call_that_gets_through_or_is_reset_at_l4_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("sleep", PRODUCTPAGE_URL, "DELETE")] = [curl_ok()]  # the page: no L7 rule in force
    cluster.curls[("reviews-v1", PRODUCTPAGE_URL, "GET")] = [RESET]  # refused by ztunnel, before any waypoint
    run = run_verify(cluster, *L7_PROBES, "--attempts", "1")
    assert run.code == 1 and run.report["failed"] == ["l7-denied:sleep:DELETE", "l7-denied:reviews-v1:GET"]
    assert "reached productpage (HTTP 200)" in run.check("l7-denied:sleep:DELETE")["summary"]
    assert "reset at L4" in run.check("l7-denied:reviews-v1:GET")["summary"]
    assert "waypoint" in run.check("l7-denied:reviews-v1:GET")["hint"]


def test_the_l7_refusals_come_from_the_stacks_outputs() -> None:
    args = verify.parse_args(["--no-stack-outputs"])
    settings, _ = verify.build_settings(args, {"verify": {"l7Denied": ["curl:DELETE", "reviews-v1:GET"]}})
    assert settings.l7_denied == (("curl", "DELETE"), ("reviews-v1", "GET"))
    flagged, _ = verify.build_settings(verify.parse_args(["--expect-l7-denied", "curl:post"]), None)
    assert flagged.l7_denied == (("curl", "POST"),)
    with pytest.raises(SystemExit, match="WORKLOAD:METHOD"):
        verify.build_settings(verify.parse_args(["--expect-l7-denied", "curl"]), None)


# The guide's exit 56 in the finished mesh: productpage's pod address skips the waypoint, ztunnel's L4 policy resets.
POD_URL = f"http://{PRODUCTPAGE_IP}:9080/productpage"
L4_PROBE = ("--expect-denied", "notsleep", "--expect-l4-denied", "notsleep")


def zero_trust_cluster() -> FakeCluster:
    """notsleep refused through the Service (here by ztunnel) and, skipping any waypoint, at productpage's pod."""
    cluster = FakeCluster(ztunnel_log=log("1.26-denied"))
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [RESET]
    cluster.curls[("notsleep", POD_URL)] = [RESET]
    return cluster


def test_exit_56_on_productpages_pod_address_passes(run_verify: Any) -> None:
    cluster = zero_trust_cluster()
    run = run_verify(cluster, *L4_PROBE)
    assert run.code == 0, run.output
    check = run.check("l4-denied:notsleep:pod-ip")
    assert check["status"] == "pass" and "curl exit 56" in check["summary"], check
    # The address called is the one the pod lookup found, from the client named.
    [lookup] = [c for c in cluster.kubectl_calls("get") if any(a.startswith("jsonpath=") for a in c)]
    assert "app=productpage" in lookup
    [call] = [c for c in cluster.kubectl_calls("exec") if PRODUCTPAGE_IP in c[-1]]
    assert "deploy/notsleep" in call and call[-1] == POD_URL


def test_a_page_served_at_productpages_pod_address_fails(run_verify: Any) -> None:
    cluster = zero_trust_cluster()
    cluster.curls[("notsleep", POD_URL)] = [curl_ok()]  # exit 0: no L4 policy refused it
    run = run_verify(cluster, *L4_PROBE, "--attempts", "2")
    assert run.code == 1 and run.report["failed"] == ["l4-denied:notsleep:pod-ip"]
    check = run.check("l4-denied:notsleep:pod-ip")
    assert check["attempts"] == 2 and "reached productpage at its pod address" in check["summary"]
    assert "L4 policy" in check["hint"] and "authorizationpolicy" in check["hint"]


def test_the_pod_address_check_skips_without_a_data_plane_and_comes_from_the_stack(run_verify: Any) -> None:
    why = "docker.io/istio/ztunnel:1.31.1 is a readiness-only stand-in"
    cluster = zero_trust_cluster()
    run = run_verify(cluster, *L4_PROBE, "--no-data-plane", why)
    check = run.check("l4-denied:notsleep:pod-ip")
    assert check["status"] == "skip" and why in check["summary"]
    assert not cluster.kubectl_calls("exec")
    settings, _ = verify.build_settings(verify.parse_args([]), {"verify": {"l4Denied": ["curl"]}})
    assert settings.l4_denied == ("curl",)
    names = [name for name, _ in verify.Verifier(settings, FakeCluster(), io.StringIO()).plan()]
    assert "l4-denied:curl:pod-ip" in names
    assert "l4-denied:curl:pod-ip" not in [n for n, _ in verify.Verifier(
        replace(settings, core=True), FakeCluster(), io.StringIO()).plan()]


def test_notsleep_allowed_when_it_should_be_denied_fails(run_verify: Any) -> None:
    run = run_verify(FakeCluster(), "--expect-denied", "notsleep", "--attempts", "2")
    assert run.code == 1 and run.report["failed"] == ["curl:notsleep"]
    assert run.check("curl:notsleep")["summary"] == "notsleep reached productpage but should be denied"


def test_notsleep_denied_when_it_should_be_allowed_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [RESET]
    run = run_verify(cluster, "--attempts", "1")
    assert run.code == 1 and run.report["failed"] == ["curl:notsleep", "loop:notsleep"]  # the loop asks the same page
    assert "--expect-denied" in run.check("curl:notsleep")["hint"]


def test_a_timeout_is_not_a_policy_denial(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [curl_failed(28, "Connection timed out after 10001 ms")]
    run = run_verify(cluster, "--expect-denied", "notsleep", "--attempts", "1")
    assert run.code == 1
    assert run.check("curl:notsleep")["summary"] == "notsleep failed, but not with a policy denial"


def test_the_ingress_gateway_in_cluster_failing_fails(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("sleep", INGRESS_URL)] = [curl_ok("", 404)]
    run = run_verify(cluster, "--attempts", "1")
    assert run.code == 1 and run.report["failed"] == ["ingress:in-cluster"]


def test_the_host_url_failing_fails(run_verify: Any) -> None:
    cluster = FakeCluster(host=[HttpResult(HOST_URL, None, "", "[Errno 111] Connection refused")])
    run = run_verify(cluster, "--attempts", "2")
    assert run.code == 1 and run.report["failed"] == ["ingress:host"]
    assert "no response ([Errno 111] Connection refused)" in run.check("ingress:host")["evidence"][0]


def test_without_a_host_url_the_host_check_is_skipped(run_verify: Any) -> None:
    run = run_verify(FakeCluster(), host=False)
    assert run.code == 0 and run.status()["ingress:host"] == "skip"
    assert "(1 skipped: ingress:host)" in run.output


def test_no_ingress_skips_both_ingress_checks_and_the_gateway_pod(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.pods["istio-system"] = [p for p in istio_pods() if "ingressgateway" not in p["metadata"]["name"]]
    run = run_verify(cluster, "--no-ingress")
    assert run.code == 0 and run.status()["ingress:in-cluster"] == run.status()["ingress:host"] == "skip"


def test_gateway_api_ingress_address(run_verify: Any) -> None:
    cluster = FakeCluster()
    url = "http://bookinfo-gateway-istio.default/productpage"
    cluster.curls[("sleep", url)] = [curl_ok()]
    cluster.pods["istio-system"] = [p for p in istio_pods() if "ingressgateway" not in p["metadata"]["name"]]
    run = run_verify(cluster, "--ingress-address", "bookinfo-gateway-istio.default")
    assert run.code == 0, run.output
    assert ("deploy/sleep", url) in {(c[c.index("-n") + 2], c[-1]) for c in cluster.kubectl_calls("exec")}


def test_ztunnel_logs_without_hbone_fail(run_verify: Any) -> None:
    run = run_verify(FakeCluster(ztunnel_log=log("1.24-plaintext")), "--attempts", "2")
    assert run.code == 1 and run.report["failed"] == ["ztunnel:hbone"]
    check = run.check("ztunnel:hbone")
    assert check["summary"] == "no inbound and no outbound HBONE connection for productpage in the ztunnel logs"
    assert check["attempts"] == 2


def test_ztunnel_logs_with_only_inbound_fail(run_verify: Any) -> None:
    inbound_only = "\n".join(line for line in log("1.22").splitlines() if 'direction="inbound"' in line)
    run = run_verify(FakeCluster(ztunnel_log=inbound_only), "--attempts", "1")
    assert run.code == 1
    assert run.check("ztunnel:hbone")["summary"].startswith("no outbound HBONE connection")


@pytest.mark.parametrize("fixture", ["1.18", "1.22", "1.31"])
def test_the_whole_flow_reads_each_log_format(run_verify: Any, fixture: str) -> None:
    assert run_verify(FakeCluster(ztunnel_log=log(fixture))).code == 0


def test_notsleeps_own_tunnel_is_required_unless_policy_denies_it(run_verify: Any) -> None:
    """The tutorial's last step: notsleep's requests tunnelled over HBONE. sleep's alone do not prove it."""
    sleep_only = "\n".join(line for line in log("1.31").splitlines() if "notsleep" not in line)
    run = run_verify(FakeCluster(ztunnel_log=sleep_only), "--attempts", "1")
    assert run.report["failed"] == ["ztunnel:hbone"]
    assert run.check("ztunnel:hbone")["summary"].startswith("no HBONE connection of notsleep")
    # the 1.20 log: notsleep refused by policy, as a zero-trust stack expects
    denied = FakeCluster(ztunnel_log=log("1.20"))
    denied.curls[("notsleep", PRODUCTPAGE_URL)] = [RESET]
    run = run_verify(denied, "--expect-denied", "notsleep")
    assert run.code == 0, run.output
    assert "loop:notsleep" not in run.status()


def test_waypoint_traversal_passes(run_verify: Any) -> None:
    cluster = FakeCluster(ztunnel_log=log("1.31-waypoint"))
    cluster.pods["default"].append(waypoint_pod())
    run = run_verify(cluster, "--waypoint", "waypoint")
    assert run.code == 0, run.output
    assert list(run.status())[-1] == "waypoint"
    evidence = run.check("waypoint")["evidence"]
    assert "ztunnel outbound to the waypoint on 15008: 2" in evidence  # sleep's and notsleep's
    assert "ztunnel inbound to productpage from the waypoint: 1" in evidence


def test_ztunnel_check_follows_a_waypoint_it_was_not_told_about(run_verify: Any) -> None:
    cluster = FakeCluster(ztunnel_log=log("1.31-waypoint"))
    cluster.pods["default"].append(waypoint_pod())
    run = run_verify(cluster)
    assert run.code == 0, run.output
    assert any("gateway/waypoint pods 10.244.1.9" in e for e in run.check("ztunnel:hbone")["evidence"])
    cluster.pods["default"].pop()  # without the waypoint's pod the hops through it prove nothing
    assert run_verify(cluster, "--attempts", "1").check("ztunnel:hbone")["status"] == "fail"


def test_waypoint_access_log_alone_is_evidence(run_verify: Any) -> None:
    cluster = FakeCluster(waypoint_log='[2026-10-10T01:00:04.390Z] "GET /productpage HTTP/1.1" 200 - via_upstream')
    cluster.pods["default"].append(waypoint_pod())
    run = run_verify(cluster, "--waypoint", "waypoint")
    assert run.code == 0 and run.check("waypoint")["status"] == "pass"


def test_traffic_that_bypasses_the_waypoint_fails(run_verify: Any) -> None:
    cluster = FakeCluster()  # 1.22 log: sleep -> productpage directly
    cluster.pods["default"].append(waypoint_pod())
    run = run_verify(cluster, "--waypoint", "waypoint", "--attempts", "1")
    assert run.code == 1 and run.report["failed"] == ["waypoint"]
    assert run.check("waypoint")["summary"] == "no request went through waypoint waypoint"


def test_a_missing_waypoint_fails(run_verify: Any) -> None:
    run = run_verify(FakeCluster(ztunnel_log=log("1.31-waypoint")), "--waypoint", "waypoint", "--attempts", "1",
                     "--wait", "0")
    assert run.code == 1
    assert run.check("waypoint")["summary"] == "no pod for waypoint waypoint in default"
    assert run.check("pods-ready:default")["summary"] == "missing workloads: waypoint"


def test_an_unreachable_cluster_stops_verify_at_the_first_sign(run_verify: Any) -> None:
    cluster = FakeCluster(unreachable=True)
    run = run_verify(cluster, "--wait", "60")
    assert run.code == 1
    [check] = run.report["checks"]  # nothing after the first check: each would only repeat it
    assert check["name"] == "pods-ready:istio-system" and "unreachable" in check["summary"]
    assert "was refused" in check["summary"]
    assert len(cluster.kubectl_calls("get")) == 1 and not cluster.sleeps  # no retries against a dead server
    assert run.output.count("was refused") <= 3


def test_a_curl_refused_inside_the_pod_is_not_an_unreachable_cluster(run_verify: Any) -> None:
    cluster = FakeCluster()
    cluster.curls[("notsleep", PRODUCTPAGE_URL)] = [curl_failed(7, "Failed to connect to productpage port 9080: "
                                                                      "Connection refused")]
    run = run_verify(cluster, "--attempts", "1")
    assert run.report["failed"] == ["curl:notsleep", "loop:notsleep"]  # the loop asks the same page


def test_core_mode_runs_only_the_core_checks(run_verify: Any) -> None:
    cluster = FakeCluster(ztunnel_log="")  # would fail if read
    run = run_verify(cluster, "--core")
    assert run.code == 0
    assert list(run.status()) == [name for name in ALL_CHECKS if name != "ztunnel:hbone"]
    assert not cluster.kubectl_calls("logs")
    denied = FakeCluster()
    denied.curls[("notsleep", PRODUCTPAGE_URL)] = [RESET]
    assert "curl:notsleep" in run_verify(denied, "--core", "--expect-denied", "notsleep").status()


@pytest.mark.parametrize("breakage", [
    lambda c: c.labels.update(default={}),
    lambda c: c.pods["default"].pop(0),
    lambda c: c.curls.update({("sleep", PRODUCTPAGE_URL): [RESET]}),
    lambda c: c.curls.update({("sleep", INGRESS_URL): [curl_ok("", 503)]}),
    lambda c: c.host.__setitem__(0, HttpResult(HOST_URL, 502, "Bad Gateway")),
    lambda c: setattr(c, "ztunnel_log", ""),
])
def test_any_failure_exits_non_zero(run_verify: Any, breakage: Any) -> None:
    cluster = FakeCluster()
    breakage(cluster)
    run = run_verify(cluster, "--attempts", "1", "--wait", "0")
    assert run.code == 1 and not run.report["ok"] and len(run.report["failed"]) >= 1


def test_exit_code_through_the_command_line() -> None:
    """`python -m tools.verify` exits non-zero when the cluster cannot be reached (no kubectl here either)."""
    import subprocess

    env = {**os.environ, "PATH": "/nonexistent"}
    done = subprocess.run([sys.executable, "-m", "tools.verify", "--no-stack-outputs", "--wait", "0",
                           "--attempts", "1", "--core"], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).parents[2], timeout=60, check=False)
    assert done.returncode == 1
    assert "kubectl: command not found" in done.stdout and "verify: FAILED" in done.stdout


# --- settings: stack outputs, kubeconfig handling --------------------------------------------------------------

KIND_KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: kind-ambient\n"


def outputs(**extra: Any) -> Result:
    values = {
        "kubeconfig": KIND_KUBECONFIG,
        "appNamespace": "default",
        "ingressUrl": HOST_URL,
        "verify": {"context": "kind-ambient", "hostUrl": HOST_URL, "ingressAddress": INGRESS_URL,
                   "expectDenied": [], "waypoint": None},
        **extra,
    }
    return Result((), 0, json.dumps(values))


def test_settings_come_from_the_stack_outputs_and_the_kubeconfig_is_a_private_temp_file() -> None:
    cluster = FakeCluster(pulumi=outputs())
    out = io.StringIO()
    assert verify.main(["--attempts", "1"], runner=cluster, out=out) == 0, out.getvalue()
    assert cluster.calls[0] == ("pulumi", "stack", "output", "--show-secrets", "--json")
    path, content, mode = cluster.kubeconfig_seen[0]
    assert content == KIND_KUBECONFIG and mode == 0o600
    assert not Path(path).exists()  # removed afterwards
    assert {p for p, _, _ in cluster.kubeconfig_seen} == {path}
    kubectl = [c for c in cluster.calls if c[0] == "kubectl"]
    assert all(c[3:5] == ("--context", "kind-ambient") for c in kubectl)
    assert ("GET", HOST_URL) in cluster.calls
    assert KIND_KUBECONFIG not in out.getvalue()


def test_flags_win_over_stack_outputs() -> None:
    cluster = FakeCluster(pulumi=outputs())
    cluster.pods["bookinfo"] = cluster.pods["default"]
    cluster.labels["bookinfo"] = cluster.labels["default"]
    assert verify.main(["--kubeconfig", "/tmp/mine", "--namespace", "bookinfo", "--stack", "dev"],
                       runner=cluster, out=io.StringIO()) == 0
    assert cluster.calls[0][-2:] == ("--stack", "dev")
    assert all(c[1:3] == ("--kubeconfig", "/tmp/mine") for c in cluster.calls if c[0] == "kubectl")
    assert any("bookinfo" in c for c in cluster.kubectl_calls("exec"))


def test_a_stack_without_ingress_skips_the_ingress_checks() -> None:
    cluster = FakeCluster(pulumi=outputs(ingressUrl=None, verify={"ingressAddress": None, "hostUrl": None}))
    cluster.pods["istio-system"] = [p for p in istio_pods() if "ingressgateway" not in p["metadata"]["name"]]
    args = verify.parse_args([])
    settings, _ = verify.build_settings(args, json.loads(cluster.pulumi.stdout))
    assert settings.ingress_address is None and settings.host_url is None


def test_a_verify_output_object_sets_what_the_stack_expects() -> None:
    hints = {"expectDenied": ["notsleep"], "waypoint": "waypoint", "ingressAddress": "bookinfo-gateway-istio.default",
             "context": "kind-x"}
    settings, content = verify.build_settings(verify.parse_args([]), json.loads(outputs(verify=hints).stdout))
    assert settings.expect_denied == ("notsleep",) and settings.waypoint == "waypoint"
    assert settings.ingress_address == "bookinfo-gateway-istio.default" and settings.context == "kind-x"
    assert content == KIND_KUBECONFIG
    flags = verify.parse_args(["--expect-denied", "sleep", "--no-ingress"])
    settings, _ = verify.build_settings(flags, json.loads(outputs(verify=hints).stdout))
    assert settings.expect_denied == ("sleep",) and settings.ingress_address is None and settings.host_url is None
    # an existing cluster has no host mapping: the stack says so with hostUrl null, whatever ingressUrl says
    settings, _ = verify.build_settings(verify.parse_args([]), json.loads(outputs(verify={"hostUrl": None}).stdout))
    assert settings.host_url is None and settings.ingress_address == verify.DEFAULT_INGRESS_ADDRESS
    settings, _ = verify.build_settings(verify.parse_args([]), json.loads(outputs().stdout))
    assert settings.host_url == HOST_URL


def test_without_stack_outputs_or_a_target_verify_refuses_to_guess() -> None:
    """kubectl's current context could be anyone's cluster."""
    cluster = FakeCluster()
    out = io.StringIO()
    assert verify.main(["--host-url", HOST_URL], runner=cluster, out=out) == 2
    [line] = out.getvalue().splitlines()
    assert line.startswith("verify: no target:") and "--context" in line
    assert not [c for c in cluster.calls if c[0] == "kubectl"]
    # Named explicitly, it runs.
    assert verify.main(["--context", "kind-ambient", "--host-url", HOST_URL], runner=cluster, out=io.StringIO()) == 0


def test_an_empty_stack_is_refused_not_verified_through_kubectls_current_context() -> None:
    """After `make destroy` the stack's outputs are `{}`: verify must not fall back to someone else's cluster."""
    cluster = FakeCluster(pulumi=Result((), 0, "{}"))
    out = io.StringIO()
    assert verify.main(["--stack", "dev", "--host-url", HOST_URL], runner=cluster, out=out) == 2
    [line] = out.getvalue().splitlines()
    assert line.startswith("verify: the stack dev has no outputs") and "make up" in line
    assert not [c for c in cluster.calls if c[0] == "kubectl"]
    # An explicit target still runs.
    assert verify.main(["--stack", "dev", "--context", "kind-ambient", "--host-url", HOST_URL], runner=cluster,
                       out=io.StringIO()) == 0


def test_the_kubeconfig_can_come_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOKE_KUBECONFIG", KIND_KUBECONFIG)
    cluster = FakeCluster(pulumi=outputs())
    assert verify.main(["--kubeconfig-env", "SMOKE_KUBECONFIG", "--core"], runner=cluster, out=io.StringIO()) == 0
    assert not any(c[0] == "pulumi" for c in cluster.calls)  # never from inside `pulumi up`
    assert {content for _, content, _ in cluster.kubeconfig_seen} == {KIND_KUBECONFIG}
    monkeypatch.setenv("SMOKE_KUBECONFIG", "")
    cluster = FakeCluster()
    out = io.StringIO()
    assert verify.main(["--kubeconfig-env", "SMOKE_KUBECONFIG", "--core"], runner=cluster, out=out) == 0
    assert "is empty: using kubectl's own kubeconfig" in out.getvalue() and not cluster.kubeconfig_seen


def test_the_report_never_holds_the_kubeconfig(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    cluster = FakeCluster(pulumi=outputs())
    verify.main(["--json", str(report)], runner=cluster, out=io.StringIO())
    text = report.read_text()
    assert "current-context" not in text and json.loads(text)["settings"]["kubeconfig"] == "(temporary file)"


# --- the real runner and shared names --------------------------------------------------------------------------

def test_system_runner_runs_commands_and_reports_missing_ones() -> None:
    runner = verify.SystemRunner()
    done = runner.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert runner.run(["/nonexistent/kubectl"]).returncode == 127
    assert runner.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2).returncode == 124


def test_system_runner_http_get_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a proxy of the environment that does not list localhost in NO_PROXY (nothing listens on its port):
    this machine's own ports are reached directly all the same."""
    for variable in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            code = 200 if self.path == "/productpage" else 404
            self.send_response(code)
            self.end_headers()
            self.wfile.write(TITLE_PAGE.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for one.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        runner = verify.SystemRunner()
        ok = runner.http_get(f"{base}/productpage")
        assert ok.status == 200 and verify.TITLE in ok.body
        assert runner.http_get(f"{base}/nothing").status == 404
    finally:
        server.shutdown()
        server.server_close()
    refused = verify.SystemRunner().http_get(f"{base}/productpage", timeout=2)
    assert refused.status is None and refused.error


def test_names_match_the_stack() -> None:
    from components.model.catalog import AMBIENT_LABEL, BOOKINFO_PORT, CLIENT_NAMES, INGRESS_RELEASE, ISTIO_NAMESPACE

    assert verify.ISTIO_NAMESPACE == ISTIO_NAMESPACE
    assert f"{INGRESS_RELEASE}.{ISTIO_NAMESPACE}" == verify.DEFAULT_INGRESS_ADDRESS
    assert dict([verify.AMBIENT_LABEL]) == AMBIENT_LABEL
    assert verify.CLIENTS == CLIENT_NAMES and verify.PRODUCTPAGE_PORT == BOOKINFO_PORT


# --- the traffic split (traffic.routes; Istio's getting-started) ----------------------------------------------

def pages(**counts: int) -> list[str]:
    return [f"reviews-{version}-" if version != "none" else "" for version, n in counts.items() for _ in range(n)]


@pytest.mark.parametrize(("found", "status", "said"), [
    (pages(v1=88, v2=12), "pass", "reviews's versions answered within their weights (v1 88, v2 12 of 100)"),
    (pages(v1=99, v3=1), "fail", "reviews-v2 answered 0 of 100 (weight 10: 1..28 expected); reviews-v3 answered 1"),
    (pages(v1=60, v2=40), "fail", "reviews-v1 answered 60 of 100 (weight 90: 72..100 expected)"),
    (pages(none=100), "fail", "no request from sleep showed which reviews answered"),
])
def test_the_split_check_counts_the_versions_that_answered(run_verify: Any, found: list[str], status: str,
                                                           said: str) -> None:
    run = run_verify(FakeCluster(page_versions=found), "--split", "reviews=v1:90,v2:10")
    check = run.check("split:reviews")
    assert check["status"] == status and check["summary"].startswith(said), check


def test_the_split_check_runs_one_loop_from_an_allowed_client(run_verify: Any) -> None:
    cluster = FakeCluster(page_versions=pages(v1=90, v2=10))
    run = run_verify(cluster, "--split", "reviews=v1:90,v2:10", "--expect-denied", "notsleep")
    assert run.check("split:reviews")["status"] == "pass"
    [loop] = [c for c in cluster.kubectl_calls("exec") if "sh" in c]
    assert "deploy/sleep" in loop and f"seq {SPLIT_REQUESTS}" in loop[-1]
    assert list(run.status()).index("split:reviews") < list(run.status()).index("ztunnel:hbone")
    skipped = run_verify(FakeCluster(), "--split", "reviews=v1:90,v2:10", "--no-data-plane", "stand-in ztunnel")
    assert skipped.check("split:reviews")["status"] == "skip"
    other = run_verify(FakeCluster(), "--split", "ratings=v1:100").check("split:ratings")
    assert other["status"] == "skip" and "shows no version of ratings" in other["summary"]
    assert "split:reviews" not in run_verify(FakeCluster(), "--core").status()


def test_split_bounds_cannot_flake_and_catch_a_wrong_split() -> None:

    assert split_bounds(0) == (0, 0) and split_bounds(100) == (100, 100)
    low, high = split_bounds(10)
    assert low == 1 and high <= 30  # the bound: v2 at least once and at most 30 of 100
    assert split_bounds(90) == (100 - split_bounds(10)[1], 100)
    assert split_bounds(50)[1] < 90  # a split sending everything to one version fails


def test_the_splits_come_from_the_stacks_outputs_or_the_flag() -> None:
    hints = {"verify": {"splits": {"reviews": {"v1": 90, "v2": 10}}}}
    settings, _ = verify.build_settings(verify.parse_args([]), hints)
    assert settings.splits == (("reviews", (("v1", 90), ("v2", 10))),)
    flagged, _ = verify.build_settings(verify.parse_args(["--split", "reviews=v3:100"]), hints)
    assert flagged.splits == (("reviews", (("v3", 100),)),)


# --- the mTLS metric (observability.addons with prometheus) -----------------------------------------------------

def metric_run(run_verify: Any, metrics: list[list[dict[str, Any]]], *flags: str) -> tuple[FakeCluster, Run]:
    cluster = FakeCluster(metrics=metrics)
    for client in ("sleep", "notsleep"):
        if client in flags:  # a client the stack denies: refused where the checks ask
            cluster.curls[(client, PRODUCTPAGE_URL)] = [RBAC]
    return cluster, run_verify(cluster, "--addon", "prometheus", *flags)


def sent_queries(cluster: FakeCluster) -> list[str]:
    return [urllib.parse.unquote(c[c.index("--raw") + 1].split("query=", 1)[1])
            for c in cluster.kubectl_calls("get") if "--raw" in c]


# Each: the series Prometheus holds, the flags; every one passes.
HEALTHY_METRICS = {
    # dev: no policy, no waypoint.
    "both clients straight to productpage": (ztunnel_metrics({"sleep": 3, "notsleep": 11}), ()),
    # getting-started's shape: through a waypoint productpage's ztunnel sees the waypoint, never the clients.
    "both clients through a waypoint": (ztunnel_metrics({"sleep": 3, "notsleep": 11}, waypoint="waypoint"), ()),
    # zero-trust: notsleep opens connections to the waypoint, which refuses it at L7; at its pod address ztunnel
    # refuses it (l4-denied:notsleep:pod-ip): opened and closed with DENY alike.
    "notsleep refused by the waypoint and at the pod": (
        ztunnel_metrics({"sleep": 3}, waypoint="waypoint", refused_at_l7={"notsleep": 11},
                        refused_at_l4={"notsleep": 5}), ("--expect-denied", "notsleep")),
}


@pytest.mark.parametrize("scenario", list(HEALTHY_METRICS))
def test_the_metric_check_reads_each_side_of_ztunnel_from_prometheus(run_verify: Any, scenario: str) -> None:
    series, flags = HEALTHY_METRICS[scenario]
    cluster, run = metric_run(run_verify, [series], *flags)
    check = run.check("metrics:mtls")
    assert check["status"] == "pass", check
    queries = sent_queries(cluster)
    # The evidence names every query sent, and Prometheus's answer to each per workload.
    assert [e.split(": ", 1)[1] for e in check["evidence"] if e.startswith("Prometheus")] == queries
    allowed = [c for c in ("sleep", "notsleep") if c not in flags]
    opened = {r["metric"]["source_workload"]: float(r["value"][1]) for r in sum_by(queries[0], series)}
    assert set(allowed) <= set(opened)
    assert all(f"{c} {opened[c]:.0f}" in " ".join(check["evidence"]) for c in allowed)
    assert all(c in check["summary"] for c in allowed)
    assert "metrics:mtls" not in run_verify(FakeCluster()).status()  # no Prometheus, no check


def test_a_client_without_mtls_connections_fails(run_verify: Any) -> None:
    # Through a waypoint, and productpage's side busy: only the client's own side can tell who called.
    _, run = metric_run(run_verify, [ztunnel_metrics({"sleep": 3}, waypoint="waypoint")], "--attempts", "1")
    check = run.check("metrics:mtls")
    assert check["status"] == "fail" and check["attempts"] > 1  # Prometheus scrapes every 15 s: tried again
    assert "no mutual_tls connection from notsleep" in check["summary"] and "sleep," not in check["summary"]


def test_a_denied_client_whose_connections_were_not_all_refused_fails(run_verify: Any) -> None:
    series = ztunnel_metrics({"sleep": 3}, refused_at_l4={"notsleep": 5}, unrefused={"notsleep": 2})
    _, run = metric_run(run_verify, [series], "--expect-denied", "notsleep", "--attempts", "1")
    check = run.check("metrics:mtls")
    assert check["status"] == "fail", check
    assert "the denied notsleep reached productpage unrefused" in check["summary"]
    assert "reached productpage and not refused: notsleep 2" in check["evidence"]
    assert "authorizationpolicy" in check["hint"]


def test_a_denied_client_refused_at_l4_passes(run_verify: Any) -> None:
    """An L4 deny counts as opened: what the check subtracts are the connections closed with DENY."""
    series = ztunnel_metrics({"sleep": 3}, refused_at_l4={"notsleep": 4})
    _, run = metric_run(run_verify, [series], "--expect-denied", "notsleep")
    check = run.check("metrics:mtls")
    assert check["status"] == "pass", check
    assert "reached productpage and not refused: notsleep 0" in check["evidence"]
    assert "none from notsleep" in check["summary"]


def test_the_metric_check_waits_for_a_scrape_and_for_prometheus(run_verify: Any) -> None:
    _, later = metric_run(run_verify, [[], ztunnel_metrics({"sleep": 1, "notsleep": 1})])
    check = later.check("metrics:mtls")
    assert check["status"] == "pass" and check["attempts"] == 2  # nothing scraped yet on the first try
    _, silent = metric_run(run_verify, [], "--attempts", "1")
    assert silent.check("metrics:mtls")["summary"] == "Prometheus did not answer the query"
