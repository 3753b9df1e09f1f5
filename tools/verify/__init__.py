"""Prove that the deployed mesh works: `python -m tools.verify` (or `make verify`).

Each check prints PASS, FAIL or SKIP with the evidence it saw; the exit code is non-zero when any check fails:

  pods-ready:<ns>   every pod of istio-system and of the app namespace is Ready (and the expected workloads exist)
  ambient-label     the app namespace carries istio.io/dataplane-mode=ambient
  curl:<client>     `kubectl exec deploy/<client> -- curl productpage:9080/productpage` shows the Bookinfo title
                    (or, for a client named by --expect-denied, is refused while the others get through)
  loop:notsleep     the tutorial's loop: ten requests from notsleep to productpage:9080/productpage all show the title
                    (unless policy denies notsleep)
  ingress:in-cluster  sleep reaches productpage through the ingress gateway's in-cluster address
  ingress:host      the host reaches productpage through the ingress URL (kind maps it to the gateway)
  ztunnel:hbone     the ztunnel logs show the requests just made, for each client policy lets through (notsleep's
                    included, as in the tutorial): inbound CONNECT to productpage's pod on 9080, outbound through
                    an HBONE tunnel on 15008
  waypoint          (with --waypoint) the requests went through the waypoint

`--core` runs only the checks before ztunnel:hbone (the in-stack smoke check). Everything that touches the cluster goes
through one `Runner` (subprocess, HTTP, sleep) so that tests replay recorded outputs instead.

Standard library only: the smoke check runs this package with whatever `python3` the machine has.

By concern: mesh.py (what is expected), runner.py (commands, HTTP), ztunnel.py (log formats, HBONE evidence),
checks.py (the checks), cli.py (flags, stack outputs, report).
"""

from tools.verify.checks import Check, CurlOutcome, Settings, Verifier, _curl_outcome
from tools.verify.cli import build_settings, kubeconfig_file, main, parse_args, report, stack_outputs
from tools.verify.mesh import (
    AMBIENT_LABEL,
    APP_WORKLOADS,
    CLIENTS,
    CURL_RESET,
    DEFAULT_INGRESS_ADDRESS,
    HBONE_PORT,
    ISTIO_NAMESPACE,
    ISTIO_WORKLOADS,
    KUBECONFIG_ENV,
    LOOP_CLIENT,
    LOOP_REQUESTS,
    LOOP_URL,
    PRODUCTPAGE,
    PRODUCTPAGE_PORT,
    STATUS_MARK,
    TITLE,
)
from tools.verify.runner import HttpResult, Kubectl, KubectlError, Result, Runner, SystemRunner
from tools.verify.ztunnel import HboneEvidence, ZtunnelEvent, hbone_evidence, parse_ztunnel_line, parse_ztunnel_logs

__all__ = [
    "AMBIENT_LABEL", "APP_WORKLOADS", "CLIENTS", "CURL_RESET", "DEFAULT_INGRESS_ADDRESS", "HBONE_PORT",
    "ISTIO_NAMESPACE", "ISTIO_WORKLOADS", "KUBECONFIG_ENV", "LOOP_CLIENT", "LOOP_REQUESTS", "LOOP_URL", "PRODUCTPAGE",
    "PRODUCTPAGE_PORT", "STATUS_MARK", "TITLE", "Check", "CurlOutcome", "HboneEvidence", "HttpResult", "Kubectl",
    "KubectlError", "Result", "Runner", "Settings", "SystemRunner", "Verifier", "ZtunnelEvent", "_curl_outcome",
    "build_settings", "hbone_evidence", "kubeconfig_file", "main", "parse_args", "parse_ztunnel_line",
    "parse_ztunnel_logs", "report", "stack_outputs",
]
