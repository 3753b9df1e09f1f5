"""The checks: each returns PASS/FAIL/SKIP with the evidence it saw and a hint."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from tools.verify.mesh import (
    AMBIENT_LABEL,
    APP_WORKLOADS,
    CLIENTS,
    CURL_RESET,
    DEFAULT_INGRESS_ADDRESS,
    HBONE_PORT,
    ISTIO_NAMESPACE,
    ISTIO_WORKLOADS,
    LOOP_CLIENT,
    LOOP_REQUESTS,
    LOOP_URL,
    PRODUCTPAGE,
    PRODUCTPAGE_PORT,
    PROMETHEUS_QUERY,
    SPLIT_REQUESTS,
    SPLIT_VISIBLE,
    STATUS_MARK,
    TITLE,
    WAYPOINT_POD_LABEL,
    Status,
    split_bounds,
)
from tools.verify.runner import ClusterUnreachable, Kubectl, KubectlError, Result, Runner
from tools.verify.ztunnel import ZtunnelEvent, hbone_evidence, parse_ztunnel_logs

# --- checks -------------------------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    status: Status
    summary: str
    evidence: list[str] = field(default_factory=list)
    hint: str = ""
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status != "fail"


@dataclass
class Settings:
    namespace: str = "default"
    kubeconfig: str | None = None
    context: str | None = None
    host_url: str | None = None
    # host[:port] of the ingress gateway inside the cluster; None: the stack has no ingress.
    ingress_address: str | None = DEFAULT_INGRESS_ADDRESS
    expect_denied: tuple[str, ...] = ()
    waypoint: str | None = None
    # Calls the waypoint's L7 rule refuses (workload, method): the guide's DELETE from curl and GET from reviews-v1.
    l7_denied: tuple[tuple[str, str], ...] = ()
    # Clients ztunnel's L4 policy resets on productpage's pod address, which skips the waypoint (the guide's exit 56).
    l4_denied: tuple[str, ...] = ()
    # The guide's curl clients (app.guide): the seed tutorial's sleep and notsleep, or Getting Started's curl.
    clients: tuple[str, ...] = CLIENTS
    # Istio's add-ons the stack runs (observability.addons): with prometheus, the mTLS metric check.
    addons: tuple[str, ...] = ()
    # Traffic splits to check (traffic.routes): (service, ((version, weight), ...)).
    splits: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    core: bool = False
    # Why this cluster has no real data plane (a stand-in ztunnel or proxy image): every traffic check skips, saying so.
    no_data_plane: str | None = None
    wait_seconds: float = 120.0
    attempts: int = 5
    interval: float = 3.0
    source: str = "flags"


@dataclass
class CurlOutcome:
    client: str
    url: str
    curl_exit: int | None
    http_status: int | None
    body: str
    stderr: str
    kubectl_error: str | None = None

    @property
    def has_title(self) -> bool:
        return TITLE in self.body

    @property
    def denied_l4(self) -> bool:
        return self.curl_exit == CURL_RESET or "connection reset by peer" in self.stderr.lower()

    @property
    def denied_l7(self) -> bool:
        return self.http_status == 403 and "rbac: access denied" in self.body.lower()

    def describe(self) -> str:
        if self.kubectl_error:
            return f"kubectl exec failed: {self.kubectl_error}"
        title = "title found" if self.has_title else "no Bookinfo title in the body"
        status = f"HTTP {self.http_status}" if self.http_status else "no HTTP response"
        said = "; ".join(line.strip() for line in self.stderr.splitlines()
                         if line.strip() and not line.startswith("command terminated"))
        error = f", curl exit {self.curl_exit}: {said}" if self.curl_exit else ""
        return f"{status}, {title}{error}"


def _curl_outcome(client: str, url: str, result: Result) -> CurlOutcome:
    stdout, status = result.stdout, None
    marker = stdout.rfind(STATUS_MARK)
    if marker >= 0:
        code = stdout[marker + len(STATUS_MARK):].strip()
        status = int(code) if code.isdigit() and code != "000" else None
        stdout = stdout[:marker]
    remote = re.search(r"command terminated with exit code (\d+)", result.stderr)
    if result.returncode == 0:
        return CurlOutcome(client, url, 0, status, stdout, result.stderr)
    if remote is not None:
        return CurlOutcome(client, url, int(remote.group(1)), status, stdout, result.stderr)
    return CurlOutcome(client, url, None, status, stdout, result.stderr,
                       kubectl_error=(result.stderr.strip() or f"exit code {result.returncode}"))


def _pod_ready(pod: dict[str, Any]) -> tuple[bool, str]:
    status = pod.get("status", {})
    phase = status.get("phase", "Unknown")
    if phase == "Succeeded":
        return True, "Succeeded"
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
    if phase == "Running" and conditions.get("Ready") == "True":
        return True, "Ready"
    reasons = []
    for container in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
        state = container.get("state", {})
        for kind in ("waiting", "terminated"):
            if kind in state and state[kind].get("reason"):
                reasons.append(f"{container.get('name')}: {state[kind]['reason']}")
        if container.get("restartCount"):
            reasons.append(f"{container.get('name')}: {container['restartCount']} restarts")
    return False, f"{phase}" + (f" ({'; '.join(reasons)})" if reasons else " (not Ready)")


def _pod_ips(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status", {})
    ips = [entry.get("ip") for entry in status.get("podIPs", []) if entry.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def _app(pod: dict[str, Any]) -> str | None:
    return pod.get("metadata", {}).get("labels", {}).get("app")


def needs_data_plane(check: str) -> bool:
    """Whether a check sends traffic through ztunnel or an Envoy (every check but the pods and the label)."""
    return not (check.startswith("pods-ready:") or check == "ambient-label")


class Verifier:
    def __init__(self, settings: Settings, runner: Runner, out: TextIO | None = None) -> None:
        self.settings = settings
        self.runner = runner
        self.kubectl = Kubectl(runner, settings.kubeconfig, settings.context)
        self.out = out if out is not None else sys.stdout
        self.traffic_started: float | None = None
        self.checks: list[Check] = []

    # progress -----------------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def plan(self) -> list[tuple[str, Callable[[], Check]]]:
        s = self.settings
        steps: list[tuple[str, Callable[[], Check]]] = [
            (f"pods-ready:{ISTIO_NAMESPACE}", lambda: self.check_pods(ISTIO_NAMESPACE, self.istio_workloads())),
            (f"pods-ready:{s.namespace}", lambda: self.check_pods(s.namespace, self.app_workloads())),
            ("ambient-label", self.check_label),
        ]
        steps += [(f"curl:{c}", lambda c=c: self.check_client(c)) for c in s.clients]  # type: ignore[misc]
        if LOOP_CLIENT in s.clients and LOOP_CLIENT not in s.expect_denied:
            steps.append((f"loop:{LOOP_CLIENT}", self.check_loop))
        steps.append(("ingress:in-cluster", self.check_ingress_in_cluster))
        steps.append(("ingress:host", self.check_ingress_host))
        if not s.core:
            steps += [(f"split:{service}", lambda service=service, weights=weights:  # type: ignore[misc]
                       self.check_split(service, weights)) for service, weights in s.splits]
            steps.append(("ztunnel:hbone", self.check_ztunnel))
            if "prometheus" in s.addons:
                steps.append(("metrics:mtls", self.check_metrics))
            if s.waypoint:
                steps.append(("waypoint", self.check_waypoint))
            steps += [(f"l4-denied:{client}:pod-ip", lambda c=client: self.check_l4_denied(c))  # type: ignore[misc]
                      for client in s.l4_denied]
            steps += [(f"l7-denied:{workload}:{method}", lambda w=workload, m=method:  # type: ignore[misc]
                       self.check_l7_denied(w, m)) for workload, method in s.l7_denied]
        if s.no_data_plane:
            reason = s.no_data_plane
            steps = [(name, lambda: Check("", "skip", f"needs a real data plane: {reason}"))
                     if needs_data_plane(name) else (name, step) for name, step in steps]
        return steps

    def istio_workloads(self) -> tuple[str, ...]:
        gateway = ("istio-ingressgateway",) if self.settings.ingress_address == DEFAULT_INGRESS_ADDRESS else ()
        return ISTIO_WORKLOADS + gateway

    def app_workloads(self) -> tuple[str, ...]:
        bookinfo = tuple(w for w in APP_WORKLOADS if w not in CLIENTS)
        return bookinfo + self.settings.clients + ((self.settings.waypoint,) if self.settings.waypoint else ())

    def first_client(self) -> str:
        """The client that sends the checks' own requests: the first one policy lets through."""
        return next((c for c in self.settings.clients if c not in self.settings.expect_denied),
                    self.settings.clients[0])

    def run(self) -> list[Check]:
        s = self.settings
        steps = self.plan()
        where = f"context {s.context}" if s.context else "the kubeconfig's current context"
        self.say(f"verify: {len(steps)} checks against {where}, namespace {s.namespace} "
                 f"({'core checks' if s.core else 'all checks'}; settings from {s.source})")
        for index, (name, step) in enumerate(steps, 1):
            self.say(f"[{index}/{len(steps)}] {name} ...")
            try:
                check = step()
            except ClusterUnreachable as error:
                check = Check(name, "fail", f"the API server is unreachable: {error}", [],
                              "Is the cluster running? `kind get clusters`, `kubectl cluster-info`; for a stack, "
                              "the stack's own context is in `pulumi stack output verify`.")
                check.name = name
                self.checks.append(check)
                self.report_check(check)
                self.say(f"verify: FAILED - stopped at {name}: the API server is unreachable ({error})")
                return self.checks
            except KubectlError as error:
                check = Check(name, "fail", "kubectl failed", [str(error)],
                              "Is the cluster reachable with this kubeconfig/context? Try `kubectl get nodes`.")
            check.name = name
            self.checks.append(check)
            self.report_check(check)
        failed = [c for c in self.checks if c.status == "fail"]
        skipped = [c for c in self.checks if c.status == "skip"]
        passed = len(self.checks) - len(failed) - len(skipped)
        if failed:
            self.say(f"verify: FAILED - {len(failed)} of {len(self.checks)} checks failed: "
                     f"{', '.join(c.name for c in failed)}")
        else:
            extra = f" ({len(skipped)} skipped: {', '.join(c.name for c in skipped)})" if skipped else ""
            self.say(f"verify: OK - {passed} of {len(self.checks)} checks proved the mesh works{extra}")
        return self.checks

    def report_check(self, check: Check) -> None:
        retried = f" (after {check.attempts} attempts)" if check.attempts > 1 else ""
        self.say(f"  {check.status.upper()} {check.name}: {check.summary}{retried}")
        for line in check.evidence:
            self.say(f"      {line}")
        if check.status == "fail" and check.hint:
            self.say(f"      hint: {check.hint}")

    def retry(self, attempt: Callable[[], Check], attempts: int | None = None,
              interval: float | None = None) -> Check:
        attempts = attempts or self.settings.attempts
        interval = self.settings.interval if interval is None else interval
        check = attempt()
        tries = 1
        while check.status == "fail" and tries < attempts:
            self.runner.sleep(interval)
            check = attempt()
            tries += 1
        check.attempts = tries
        return check

    # checks -------------------------------------------------------------------------------------------------
    def check_pods(self, namespace: str, expected: tuple[str, ...]) -> Check:
        interval = 5.0
        attempts = max(1, int(self.settings.wait_seconds // interval) + 1)
        return self.retry(lambda: self._pods_once(namespace, expected), attempts, interval)

    def _pods_once(self, namespace: str, expected: tuple[str, ...]) -> Check:
        pods = self.kubectl.json("get", "pods", "-n", namespace).get("items", [])
        names = [p["metadata"]["name"] for p in pods]
        not_ready = []
        for pod in pods:
            ready, why = _pod_ready(pod)
            if not ready:
                not_ready.append(f"{pod['metadata']['name']}: {why}")
        missing = [w for w in expected if not any(re.fullmatch(rf"{re.escape(w)}-[a-z0-9]+(-[a-z0-9]+)?", n)
                                                   for n in names)]
        counts = ", ".join(f"{w}×{sum(1 for n in names if re.fullmatch(rf'{re.escape(w)}-[a-z0-9]+(-[a-z0-9]+)?', n))}"
                           for w in expected)
        evidence = [f"workloads: {counts}"] if expected else []
        hint = (f"`kubectl get pods -n {namespace}` and `kubectl describe pod -n {namespace} <pod>`: look at the "
                "Events and the container's last state (CrashLoopBackOff: `kubectl logs --previous`).")
        if not pods:
            return Check("", "fail", f"no pods in namespace {namespace}", evidence, hint)
        if not_ready or missing:
            parts = []
            if not_ready:
                parts.append(f"{len(not_ready)} of {len(pods)} pods not Ready")
            if missing:
                parts.append(f"missing workloads: {', '.join(missing)}")
            return Check("", "fail", "; ".join(parts), evidence + [f"not Ready: {n}" for n in not_ready], hint)
        return Check("", "pass", f"{len(pods)}/{len(pods)} pods Ready", evidence)

    def check_label(self) -> Check:
        ns = self.settings.namespace
        labels = self.kubectl.json("get", "namespace", ns).get("metadata", {}).get("labels", {}) or {}
        key, value = AMBIENT_LABEL
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
        if labels.get(key) == value:
            return Check("", "pass", f"namespace {ns} has {key}={value}", [f"labels: {shown}"])
        return Check("", "fail", f"namespace {ns} lacks {key}={value}", [f"labels: {shown}"],
                     "Without the label ztunnel does not capture the namespace's pods: nothing is in the mesh. "
                     "The stack's AmbientEnrolment patch sets it; run `pulumi up` again or check for a manual "
                     f"`kubectl label namespace {ns} {key}-`.")

    def curl(self, client: str, url: str, method: str | None = None) -> CurlOutcome:
        if self.traffic_started is None:
            self.traffic_started = time.monotonic()
        result = self.kubectl("exec", "-n", self.settings.namespace, f"deploy/{client}", "--",
                              "curl", "-sS", "--max-time", "10", "-w", f"\\n{STATUS_MARK}%{{http_code}}\\n",
                              *(["-X", method] if method else []), url, timeout=40)
        return _curl_outcome(client, url, result)

    def check_client(self, client: str) -> Check:
        url = f"http://{PRODUCTPAGE}:{PRODUCTPAGE_PORT}/productpage"
        denied = client in self.settings.expect_denied
        return self.retry(lambda: self._client_once(client, url, denied))

    def _client_once(self, client: str, url: str, expect_denied: bool) -> Check:
        outcome = self.curl(client, url)
        evidence = [f"kubectl exec deploy/{client} -- curl {url}: {outcome.describe()}"]
        if outcome.kubectl_error:
            return Check("", "fail", f"could not run curl in deploy/{client}", evidence,
                         f"Does deploy/{client} exist and run in {self.settings.namespace}? "
                         f"`kubectl get deploy,pods -n {self.settings.namespace} -l app={client}`.")
        if expect_denied:
            if outcome.denied_l4:
                return Check("", "pass", f"{client} is denied as expected (connection reset: ztunnel L4 policy)",
                             evidence)
            if outcome.denied_l7:
                return Check("", "pass", f"{client} is denied as expected (HTTP 403 RBAC: waypoint L7 policy)",
                             evidence)
            if outcome.has_title:
                return Check("", "fail", f"{client} reached productpage but should be denied", evidence,
                             "The AuthorizationPolicy on productpage is missing or allows this client: "
                             f"`kubectl get authorizationpolicy -n {self.settings.namespace} -o yaml`.")
            return Check("", "fail", f"{client} failed, but not with a policy denial", evidence,
                         f"An L4 denial resets the connection (curl exit {CURL_RESET}); an L7 denial is HTTP 403 "
                         "`RBAC: access denied`. Anything else is a broken path, not a policy.")
        if outcome.has_title and outcome.http_status in (None, 200):
            return Check("", "pass", f"{client} -> productpage:{PRODUCTPAGE_PORT} returns the Bookinfo title",
                         evidence)
        hint = ("curl exit 56 (connection reset) means ztunnel refused it: an AuthorizationPolicy denies this "
                "client (pass --expect-denied if intended). Exit 7/28: productpage is not reachable (pods, Service, "
                "ztunnel logs). HTTP 403 `RBAC: access denied`: the waypoint's L7 policy.")
        return Check("", "fail", f"{client} did not get the Bookinfo title from productpage", evidence, hint)

    def check_l7_denied(self, workload: str, method: str) -> Check:
        """The guide's L7 checks: the waypoint answers 403 `RBAC: access denied` to a method or an identity its
        AuthorizationPolicy does not name."""
        url = f"http://{PRODUCTPAGE}:{PRODUCTPAGE_PORT}/productpage"
        return self.retry(lambda: self._l7_denied_once(workload, method, url))

    def _l7_denied_once(self, workload: str, method: str, url: str) -> Check:
        outcome = self.curl(workload, url, method)
        evidence = [f"kubectl exec deploy/{workload} -- curl -X {method} {url}: {outcome.describe()}"]
        policies = f"`kubectl get authorizationpolicy -n {self.settings.namespace} -o yaml`"
        if outcome.kubectl_error:
            return Check("", "fail", f"could not run curl in deploy/{workload}", evidence,
                         f"`kubectl get deploy,pods -n {self.settings.namespace}`: does deploy/{workload} run?")
        if outcome.denied_l7:
            return Check("", "pass", f"{method} from {workload} gets HTTP 403 RBAC: access denied (waypoint L7 "
                         "policy)", evidence)
        if outcome.http_status is not None and outcome.http_status < 400:
            return Check("", "fail", f"{method} from {workload} reached productpage (HTTP {outcome.http_status}) but "
                         "the waypoint's L7 policy should refuse it", evidence,
                         f"The L7 AuthorizationPolicy (targetRefs: the productpage Service) is missing or wider: "
                         f"{policies}; is productpage behind the waypoint (`kubectl get svc {PRODUCTPAGE} "
                         "--show-labels`: istio.io/use-waypoint, or the namespace's)?")
        if outcome.denied_l4:
            return Check("", "fail", f"{method} from {workload} was reset at L4, not refused by the waypoint",
                         evidence, "ztunnel's L4 policy refused the call before any waypoint saw it: without a "
                         "waypoint in front of productpage the L7 rule is never applied. "
                         f"`kubectl get gateway -n {self.settings.namespace}`, {policies}.")
        return Check("", "fail", f"{method} from {workload} failed, but not with `RBAC: access denied`", evidence,
                     "Anything but HTTP 403 `RBAC: access denied` is a broken path, not the policy: `make diagnose`.")

    def check_l4_denied(self, client: str) -> Check:
        """The guide's exit 56 in the finished mesh: curl from `client` to productpage's pod address, which the
        waypoint does not serve (it is for the Service), so ztunnel's L4 policy alone decides and resets it."""
        return self.retry(lambda: self._l4_denied_once(client))

    def _l4_denied_once(self, client: str) -> Check:
        ns = self.settings.namespace
        find = ("get", "pods", "-n", ns, "-l", f"app={PRODUCTPAGE}", "-o", "jsonpath={.items[*].status.podIP}")
        found = self.kubectl(*find)
        ips = found.stdout.split() if found.returncode == 0 else []
        evidence = [f"kubectl {' '.join(find)}: {' '.join(ips) or found.stderr.strip() or 'no pod IP'}"]
        if not ips:
            return Check("", "fail", "no productpage pod IP to call", evidence,
                         "productpage has no running pod: see pods-ready.")
        host = f"[{ips[0]}]" if ":" in ips[0] else ips[0]
        url = f"http://{host}:{PRODUCTPAGE_PORT}/productpage"
        outcome = self.curl(client, url)
        evidence.append(f"kubectl exec deploy/{client} -- curl {url}: {outcome.describe()}")
        policies = f"`kubectl get authorizationpolicy -n {ns} -o yaml`"
        if outcome.kubectl_error:
            return Check("", "fail", f"could not run curl in deploy/{client}", evidence,
                         f"`kubectl get deploy,pods -n {ns} -l app={client}`: does deploy/{client} run?")
        if outcome.curl_exit == CURL_RESET:
            return Check("", "pass", f"{client} -> productpage's pod address ends in curl exit {CURL_RESET}: ztunnel's "
                         "L4 policy resets it (the pod address skips the waypoint)", evidence)
        if outcome.has_title or outcome.curl_exit == 0:
            return Check("", "fail", f"{client} reached productpage at its pod address: nothing refused it at L4",
                         evidence,
                         "Behind a waypoint, ztunnel's L4 policy on productpage (selector app=productpage) must "
                         "admit only the gateway's and the waypoint's identities, or a client skips the waypoint's L7 "
                         f"rule by calling the pod directly: {policies}.")
        if outcome.denied_l7:
            return Check("", "fail", f"the waypoint answered {client} at productpage's pod address, not ztunnel",
                         evidence, "A waypoint for workloads (istio.io/waypoint-for: workload or all) serves pod "
                         f"addresses too; the stack's is for the Service: `kubectl get gateway -n {ns} --show-labels`.")
        return Check("", "fail", f"{client} -> productpage's pod address failed, but not with curl exit {CURL_RESET}",
                     evidence, f"ztunnel's L4 denial resets the connection (exit {CURL_RESET}); exit 7/28 is a broken "
                     "path (the pod, its node's ztunnel), not the policy: `make diagnose`.")

    def check_loop(self) -> Check:
        outcomes = [self.curl(LOOP_CLIENT, LOOP_URL) for _ in range(LOOP_REQUESTS)]
        titles = sum(1 for o in outcomes if o.has_title)
        evidence = [f"kubectl exec deploy/{LOOP_CLIENT} -- curl -s {LOOP_URL}, {LOOP_REQUESTS} times: "
                    f"{titles} titles"]
        evidence += [f"e.g. {o.describe()}" for o in outcomes if not o.has_title][:1]
        if titles == LOOP_REQUESTS:
            return Check("", "pass", f"all {LOOP_REQUESTS} requests of the tutorial's loop show the Bookinfo title",
                         evidence)
        return Check("", "fail", f"{LOOP_REQUESTS - titles} of {LOOP_REQUESTS} requests from {LOOP_CLIENT} did not "
                     "show the title", evidence,
                     "Failures while pods start are normal: wait for pods-ready and run again. Exit 56 on every "
                     "request: an AuthorizationPolicy denies notsleep.")

    def check_split(self, service: str, weights: tuple[tuple[str, int], ...]) -> Check:
        """Istio's getting-started check: SPLIT_REQUESTS requests, each answering version counted on the page."""
        if service != SPLIT_VISIBLE:
            return Check("", "skip", f"the page shows no version of {service} (only {SPLIT_VISIBLE}'s pod)")
        client = self.first_client()
        if client in self.settings.expect_denied:
            return Check("", "skip", "no client that policy lets through")
        url = f"http://{PRODUCTPAGE}:{PRODUCTPAGE_PORT}/productpage"
        # One line per request: the version's pod prefix, or nothing.
        loop = (f"for i in $(seq {SPLIT_REQUESTS}); do echo \"$(curl -s --max-time 10 {url} | "
                f"grep -o '{service}-v[0-9]*-' | head -1)\"; done")
        if self.traffic_started is None:
            self.traffic_started = time.monotonic()
        result = self.kubectl("exec", "-n", self.settings.namespace, f"deploy/{client}", "--", "sh", "-c", loop,
                              timeout=600)
        seen = [line.strip().rstrip("-") for line in result.stdout.splitlines()]
        counts = {version: sum(1 for s in seen if s == f"{service}-{version}") for version in
                  sorted({s.rsplit("-", 1)[1] for s in seen if s} | {v for v, _ in weights})}
        wanted = dict(weights)
        evidence = [f"kubectl exec deploy/{client} -- sh -c '{loop}': " + ", ".join(
            f"{service}-{v} {n}" for v, n in counts.items()) + f", no version {seen.count('')}"]
        off = []
        for version, count in counts.items():
            low, high = split_bounds(wanted.get(version, 0))
            if not low <= count <= high:
                off.append(f"{service}-{version} answered {count} of {SPLIT_REQUESTS} (weight "
                           f"{wanted.get(version, 0)}: {low}..{high} expected)")
        if result.returncode != 0 or seen.count("") == len(seen):
            return Check("", "fail", f"no request from {client} showed which {service} answered", evidence,
                         "Does productpage answer? The curl checks above say; `make diagnose`.")
        if off:
            return Check("", "fail", "; ".join(off), evidence,
                         f"The HTTPRoute {service} (parent: the {service} Service) is applied by the waypoint only: "
                         f"`kubectl get httproute {service} -n {self.settings.namespace} -o yaml` (its status), and "
                         "the Service's istio.io/use-waypoint label or the namespace's.")
        return Check("", "pass", f"{service}'s versions answered within their weights ("
                     + ", ".join(f"{v} {counts[v]}" for v in counts) + f" of {SPLIT_REQUESTS})", evidence)

    def _prometheus(self, query: str) -> tuple[dict[str, float] | None, str]:
        """One instant query through the API server's service proxy: the value of each `source_workload` series (an
        absent series is 0), or None and what kubectl said."""
        path = f"{PROMETHEUS_QUERY}?query={urllib.parse.quote(query, safe='')}"
        result = self.kubectl("get", "--raw", path, timeout=60)
        try:
            series = json.loads(result.stdout)["data"]["result"] if result.returncode == 0 else None
            return ({s["metric"].get("source_workload", "?"): float(s["value"][1]) for s in series}
                    if series is not None else None), result.stderr.strip()
        except (ValueError, KeyError, TypeError, IndexError):
            return None, result.stderr.strip() or result.stdout.strip()[:300]

    def check_metrics(self) -> Check:
        """ztunnel's own account of the requests just made, in Prometheus (Istio's "verify mutual TLS" query).

        The client's ztunnel (reporter="source") names the client and the Service it called, with or without a
        waypoint in the path: each client policy lets through opened mutual_tls connections to productpage. Only
        productpage's ztunnel (reporter="destination") knows what reached it, and names the peer it saw (the waypoint,
        when one is in the path): of a denied client's connections there, every one was refused (closed with
        response_flags="DENY"; an L4 deny is counted as opened too). A client the waypoint refuses at L7 still opens
        connections to the waypoint, so the client's side cannot show a denial."""
        self._ensure_traffic()
        s = self.settings
        allowed = [c for c in s.clients if c not in s.expect_denied]
        service = f"{PRODUCTPAGE}\\\\.{s.namespace}\\\\..+"
        opened_q = ("sum by (source_workload) (istio_tcp_connections_opened_total{reporter=\"source\","
                    f"destination_service=~\"{service}\",connection_security_policy=\"mutual_tls\"}})")
        at_productpage = (f"reporter=\"destination\",destination_workload=\"{PRODUCTPAGE}-v1\","
                          f"destination_workload_namespace=\"{s.namespace}\","
                          f"source_workload=~\"{'|'.join(s.expect_denied)}\"")
        reached_q = f"sum by (source_workload) (istio_tcp_connections_opened_total{{{at_productpage}}})"
        refused_q = (f"sum by (source_workload) (istio_tcp_connections_closed_total{{{at_productpage},"
                     "response_flags=\"DENY\"})")
        queries = [opened_q] + ([reached_q, refused_q] if s.expect_denied else [])

        def once() -> Check:
            answers: list[dict[str, float]] = []
            evidence: list[str] = []
            for query in queries:
                evidence.append(f"Prometheus (through the API server): {query}")
                values, said = self._prometheus(query)
                if values is None:
                    return Check("", "fail", "Prometheus did not answer the query", evidence + [said],
                                 "Is the prometheus Deployment in istio-system Ready? `make diagnose`.")
                answers.append(values)

            def shown(values: dict[str, float]) -> str:
                return ", ".join(f"{w} {n:.0f}" for w, n in sorted(values.items())) or "nobody"

            opened = answers[0]
            evidence.append(f"mutual_tls connections opened to {PRODUCTPAGE}.{s.namespace} (the client's ztunnel) by: "
                            + shown(opened))
            reached: dict[str, float] = {}
            if s.expect_denied:
                arrived, refused = answers[1], answers[2]
                reached = {c: arrived.get(c, 0.0) - refused.get(c, 0.0) for c in s.expect_denied}
                evidence.append(f"at {PRODUCTPAGE}-v1 (its ztunnel): opened by " + shown(arrived)
                                + "; closed with DENY: " + shown(refused))
                evidence.append("reached productpage and not refused: " + ", ".join(
                    f"{c} {reached[c]:.0f}" for c in s.expect_denied))
            missing = [c for c in allowed if opened.get(c, 0.0) <= 0]
            leaked = [c for c in s.expect_denied if reached[c] > 0]
            if missing or leaked:
                said = "; ".join(([f"no mutual_tls connection from {', '.join(missing)}"] if missing else [])
                                 + ([f"connections from the denied {', '.join(leaked)} reached productpage unrefused"]
                                    if leaked else []))
                hint = ("Prometheus scrapes every 15 s: run again. No series at all: is ztunnel scraped (its "
                        "prometheus.io/scrape annotation, the kubernetes-pods job)?")
                if leaked:
                    hint += (" Connections that productpage's ztunnel opened and did not close with DENY got "
                             f"through: `kubectl get authorizationpolicy -n {s.namespace} -o yaml`.")
                return Check("", "fail", said, evidence, hint)
            shown_denied = (f"; none from {', '.join(s.expect_denied)} reached productpage unrefused (its ztunnel's "
                            "side)" if s.expect_denied else "")
            return Check("", "pass", "ztunnel's metrics show mutual_tls connections to productpage opened by "
                         + (", ".join(allowed) or "no client") + " (the client's side)" + shown_denied, evidence)
        return self.retry(once, attempts=max(self.settings.attempts, 7), interval=10.0)

    def check_ingress_in_cluster(self) -> Check:
        address = self.settings.ingress_address
        if not address:
            return Check("", "skip", "the stack has no ingress gateway (app.ingress none)")
        url = address if address.startswith("http") else f"http://{address}/productpage"

        def once() -> Check:
            client = self.first_client()
            outcome = self.curl(client, url)
            evidence = [f"kubectl exec deploy/{client} -- curl {url}: {outcome.describe()}"]
            if outcome.has_title:
                return Check("", "pass", "productpage answers through the ingress gateway in-cluster", evidence)
            return Check("", "fail", "no Bookinfo title through the ingress gateway in-cluster", evidence,
                         "Check the gateway pods and its Service (`kubectl get pods,svc -n istio-system`), the "
                         "Gateway/VirtualService (or HTTPRoute) in the app namespace, and that the ingress identity "
                         "is allowed to call productpage.")
        return self.retry(once)

    def check_ingress_host(self) -> Check:
        url = self.settings.host_url
        if not url:
            return Check("", "skip", "no host URL (pass --host-url, e.g. http://localhost:8080/productpage)")

        def once() -> Check:
            result = self.runner.http_get(url)
            status = f"HTTP {result.status}" if result.status else f"no response ({result.error})"
            found = TITLE in result.body
            evidence = [f"GET {url}: {status}, {'title found' if found else 'no Bookinfo title in the body'}"]
            if found and result.status == 200:
                return Check("", "pass", "productpage answers from the host through the ingress", evidence)
            return Check("", "fail", "the host does not reach productpage through the ingress", evidence,
                         "On kind the host port is mapped to the gateway's NodePort (cluster.ingressHostPort → "
                         "ingressNodePort): is another process on that port? Elsewhere run the tryIt.portForward "
                         "command first.")
        return self.retry(once)

    def _since(self) -> str:
        started = self.traffic_started if self.traffic_started is not None else time.monotonic()
        return f"{int(time.monotonic() - started) + 20}s"

    def _app_pods(self) -> dict[str, list[str]]:
        """Pod IPs by `app` label; pods of Gateway API gateways (waypoints included) under `gateway:<name>`."""
        pods = self.kubectl.json("get", "pods", "-n", self.settings.namespace).get("items", [])
        ips: dict[str, list[str]] = {}
        for pod in pods:
            gateway = pod.get("metadata", {}).get("labels", {}).get(WAYPOINT_POD_LABEL)
            key = f"gateway:{gateway}" if gateway else _app(pod)
            if key:
                ips.setdefault(key, []).extend(_pod_ips(pod))
        return ips

    def _waypoint_ips(self) -> list[str]:
        if not self.settings.waypoint:
            return []
        pods = self.kubectl.json("get", "pods", "-n", self.settings.namespace, "-l",
                                 f"{WAYPOINT_POD_LABEL}={self.settings.waypoint}").get("items", [])
        return [ip for pod in pods for ip in _pod_ips(pod)]

    def ztunnel_events(self) -> list[ZtunnelEvent]:
        result = self.kubectl("logs", "-n", ISTIO_NAMESPACE, "-l", "app=ztunnel", "--tail=-1",
                              f"--since={self._since()}", "--prefix", "--max-log-requests=50", timeout=120)
        if result.returncode != 0:
            raise KubectlError(result)
        return parse_ztunnel_logs(result.stdout)

    def _ensure_traffic(self) -> None:
        if self.traffic_started is None:  # e.g. every curl check was skipped: make one request to look for
            self.curl(self.first_client(), f"http://{PRODUCTPAGE}:{PRODUCTPAGE_PORT}/productpage")

    def check_ztunnel(self) -> Check:
        self._ensure_traffic()
        return self.retry(self._ztunnel_once)

    def _ztunnel_once(self) -> Check:
        apps = self._app_pods()
        targets = apps.get(PRODUCTPAGE, [])
        clients = {c: apps.get(c, []) for c in self.settings.clients}
        client_ips = [ip for ips in clients.values() for ip in ips]
        # Named with --waypoint, or else any Gateway API proxy of the namespace: with a waypoint in the path the
        # outbound hop ends at the waypoint and the inbound one starts there.
        waypoints = self._waypoint_ips() if self.settings.waypoint else \
            [ip for key, ips in apps.items() if key.startswith("gateway:") for ip in ips]
        events = self.ztunnel_events()
        found = hbone_evidence(events, targets, client_ips, waypoints)
        names = {ip: c for c, ips in clients.items() for ip in ips}
        evidence = [f"productpage pods {', '.join(targets) or 'none'}; clients "
                    + ", ".join(f"{c} {', '.join(ips) or '?'}" for c, ips in clients.items())
                    + (f"; gateway/waypoint pods {', '.join(waypoints)}" if waypoints else ""),
                    f"{len(events)} connections in the ztunnel logs since the first request; "
                    f"formats: {', '.join(sorted({e.format for e in events})) or 'none recognised'}",
                    f"inbound HBONE to productpage:{PRODUCTPAGE_PORT}: {len(found.inbound)}",
                    f"outbound via HBONE :{HBONE_PORT}: {len(found.outbound)}"]
        for label, group in (("inbound", found.inbound), ("outbound", found.outbound)):
            if group:
                evidence.append(f"e.g. {label}: {group[0].describe()}")
        # Each client that policy lets through must show its own tunnel: the tutorial shows notsleep's.
        per_client = {c: hbone_evidence(events, targets, ips, waypoints) for c, ips in clients.items()
                      if c not in self.settings.expect_denied and ips}
        evidence += [f"{c}: inbound {len(e.inbound)}, outbound {len(e.outbound)}" for c, e in per_client.items()]
        lacking = [c for c, e in per_client.items() if not e.ok]
        if found.rejected:
            who = sorted({names.get(e.src_ip or "", e.src_ip or "?") for e in found.rejected})
            example = sorted(found.rejected, key=lambda e: e.direction != "inbound")[0]
            evidence.append(f"rejected by policy: {len(found.rejected)} connections from {', '.join(who)} "
                            f"(e.g. {example.direction}: {example.error})")
        if not targets:
            return Check("", "fail", "no productpage pod IP to look for", evidence,
                         "productpage has no running pod: see pods-ready.")
        if found.ok and not lacking:
            return Check("", "pass", "ztunnel carried the requests of " + ", ".join(per_client or clients)
                         + f": inbound CONNECT to productpage, outbound through HBONE on {HBONE_PORT}", evidence)
        if found.ok:
            return Check("", "fail", f"no HBONE connection of {', '.join(lacking)} for productpage in the ztunnel "
                         "logs", evidence,
                         "Its requests may have been made before the logs were read: run verify again. `kubectl "
                         "logs -n istio-system -l app=ztunnel --tail 50` shows what ztunnel did.")
        missing = [d for d, group in (("inbound", found.inbound), ("outbound", found.outbound)) if not group]
        return Check("", "fail", f"no {' and no '.join(missing)} HBONE connection for productpage in the ztunnel "
                     "logs", evidence,
                     "Plain TCP lines (or none at all) mean ztunnel did not capture the pods: are they enrolled "
                     "(ambient-label) and were they restarted before ztunnel was ready? `kubectl logs -n "
                     "istio-system -l app=ztunnel --tail 50` shows what ztunnel did; `istioctl ztunnel-config "
                     "workloads` shows the protocol (HBONE/TCP) of each pod.")

    def check_waypoint(self) -> Check:
        self._ensure_traffic()
        return self.retry(self._waypoint_once)

    def _waypoint_once(self) -> Check:
        name = self.settings.waypoint or ""
        ns = self.settings.namespace
        waypoints = self._waypoint_ips()
        if not waypoints:
            return Check("", "fail", f"no pod for waypoint {name} in {ns}",
                         [f"kubectl get pods -n {ns} -l {WAYPOINT_POD_LABEL}={name}: none"],
                         f"`kubectl get gateway -n {ns} {name}`: is it Programmed? istiod deploys its pods.")
        apps = self._app_pods()
        client_ips = [ip for c in self.settings.clients for ip in apps.get(c, [])]
        found = hbone_evidence(self.ztunnel_events(), apps.get(PRODUCTPAGE, []), client_ips, waypoints)
        identity = f"/sa/{name}"
        via_waypoint_inbound = [e for e in found.inbound if (e.src_identity or "").endswith(identity)
                                or e.src_ip in waypoints]
        access = self.kubectl("logs", "-n", ns, "-l", f"{WAYPOINT_POD_LABEL}={name}", "--tail=-1",
                              f"--since={self._since()}", timeout=60)
        access_lines = [line for line in access.stdout.splitlines() if "/productpage" in line] \
            if access.returncode == 0 else []
        evidence = [f"waypoint pods {', '.join(waypoints)}",
                    f"ztunnel outbound to the waypoint on {HBONE_PORT}: {len(found.through_waypoint)}",
                    f"ztunnel inbound to productpage from the waypoint: {len(via_waypoint_inbound)}",
                    f"waypoint access log lines for /productpage: {len(access_lines)}"
                    + ("" if access_lines else " (access logging may be off)")]
        if found.through_waypoint:
            evidence.append(f"e.g. {found.through_waypoint[0].describe()}")
        if access_lines:
            evidence.append(f"e.g. {access_lines[0][:300]}")
        if found.through_waypoint or access_lines:
            return Check("", "pass", f"requests to productpage went through waypoint {name}", evidence)
        return Check("", "fail", f"no request went through waypoint {name}", evidence,
                     f"Is productpage (or the namespace) labelled istio.io/use-waypoint={name}? "
                     "`istioctl ztunnel-config services` shows each service's waypoint.")


