"""The real istiod (pilot-discovery, built from the same istio.io/istio snapshot as the charts) against kwok.

kwok fakes every pod, including the one the istiod chart's Deployment creates, so nothing would serve Istio's
webhooks or play the Gateway API controller. This runs pilot-discovery as a local process with kwok's kubeconfig
("out of cluster") and makes it stand behind that pod:

- Webhooks: the apiserver (a local process too) cannot reach a Service in kwok's cluster, so the istiod release
  points its injection and validation webhooks at this process by URL, with this module's own CA. Those four
  values are the engine tier's only change to the stack (Istiod.chart_values: `istiodRemote.injectionURL`,
  `istiodRemote.injectionCABundle`, `base.validationURL`, `base.validationCABundle`, all chart values of
  Istio's own), applied by tests/engine/engine_main.py to the releases of the istiod and base charts (base's
  makes the default validator) and nowhere else.
- Readiness: kwok is told to leave pods labelled app=istiod alone (KwokCluster(disregard="app=istiod")), and the
  PodKubelet below marks such a pod Ready only while pilot-discovery's own readiness endpoint answers 200: Helm's
  wait on the istiod release ends when the real istiod serves, as on a real cluster. It also completes the
  deletion of those pods (what a kubelet does).
- Start: istiod reads its injection templates and mesh config from the ConfigMaps the chart creates and skips
  injection for good if the injector ConfigMap is missing when it starts, so the process starts when that
  ConfigMap and the istiod Deployment exist (the chart applies both before Helm waits), with the Deployment's own
  environment (PILOT_ENABLE_AMBIENT and the rest come from the chart's values).

Everything else istiod does is its own: GatewayClasses, the waypoint's Deployment and Service, Gateway status,
injection of the ingress gateway's pod, validation of every Istio object the stack creates, the CA and its
istio-ca-root-cert ConfigMaps.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.engine.kwok import KwokCluster, engine_bin, engine_cache

NAMESPACE = "istio-system"
LABEL = "app=istiod"
INJECTOR_CONFIGMAP = "istio-sidecar-injector"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a serving certificate for localhost / 127.0.0.1 (openssl): (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n", encoding="utf-8")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
            "-subj", "/CN=ambient-mesh engine tier webhook CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
            str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@dataclass
class Ports:
    http: int = field(default_factory=free_port)
    https: int = field(default_factory=free_port)  # webhooks
    grpc: int = field(default_factory=free_port)
    secure_grpc: int = field(default_factory=free_port)
    monitoring: int = field(default_factory=free_port)


class Api:
    """The few REST calls the kubelet stand-in needs, with the kubeconfig's client certificate (stdlib only)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        self.context = ssl.create_default_context()
        base = kubeconfig.parent
        tmp = base / ".api-credentials"

        def path(entry: dict[str, Any], key: str) -> str:
            if entry.get(f"{key}-data"):
                tmp.mkdir(exist_ok=True)
                out = tmp / key
                out.write_bytes(base64.b64decode(entry[f"{key}-data"]))
                return str(out)
            return str((base / entry[key]).resolve()) if not os.path.isabs(entry[key]) else entry[key]

        if cluster.get("insecure-skip-tls-verify"):
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        else:
            self.context.load_verify_locations(path(cluster, "certificate-authority"))
        self.context.load_cert_chain(path(user, "client-certificate"), path(user, "client-key"))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.server}{path}", data=data, method=method,  # noqa: S310
                                         headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class Istiod:
    """pilot-discovery out of cluster + the kubelet stand-in for the istiod pod. A context manager."""

    def __init__(self, cluster: KwokCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.ports = Ports()
        self.ca, self.cert, self.key = make_certs(workdir / "certs")
        self.api = Api(cluster.kubeconfig)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "pilot-discovery.log"
        self.events: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="istiod-kubelet", daemon=True)
        self.started_at: float | None = None
        self.ready_at: float | None = None

    # --- what the stack's releases get (engine tier only) ------------------------------------------------------
    def chart_values(self) -> dict[str, dict[str, Any]]:
        """Chart -> values that send Istio's webhooks to this process (see the module docstring). By chart, not by
        release name: a change that renames a release must not lose them (the engine diff's replacement fixture).

        istiod's chart makes the injection webhook and the per-revision validator; base's chart the default
        validator (istiod-default-validator). istiod's validation controller turns every validator it owns to
        failurePolicy Fail once its webhook answers, so one left pointing at the Service would refuse every Istio
        object.
        """
        bundle = base64.b64encode(self.ca.read_bytes()).decode()
        url = f"https://localhost:{self.ports.https}"
        validation = {"base": {"validationURL": f"{url}/validate", "validationCABundle": bundle}}
        return {
            "base": validation,
            "istiod": {"istiodRemote": {"injectionURL": f"{url}/inject", "injectionCABundle": bundle}, **validation},
        }

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def __enter__(self) -> Istiod:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.stop_process()
        # pytest's temp dirs are pruned after a few runs: the last log of each run stays in the engine cache.
        if self.log_path.is_file():
            keep = engine_cache() / "logs" / f"pilot-discovery-{self.workdir.parent.name}.log"
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_bytes(self.log_path.read_bytes())

    def stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _note(self, message: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {message}")

    # --- the loop: start pilot when its config exists, play kubelet for its pods ---------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as error:  # noqa: BLE001 - keep serving; the test reads self.errors
                self.errors.append(repr(error))
                self._note(f"error: {error!r}")
            self._stop.wait(0.25)

    def _tick(self) -> None:
        if self.process is None:
            deployment = self.api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/istiod")
            configmap = self.api.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{INJECTOR_CONFIGMAP}")
            if deployment is not None and configmap is not None:
                self._start(deployment)
        elif self.process.poll() is not None:
            self.errors.append(f"pilot-discovery exited {self.process.returncode}:\n{self.log_tail()}")
            self._note(f"pilot-discovery exited {self.process.returncode}")
            self.process = None
            return
        serving = self.process is not None and _ready(self.ports.http)
        if serving and self.ready_at is None:
            self.ready_at = time.monotonic()
            self._note("pilot-discovery ready")
        pods = self.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={LABEL}") or {"items": []}
        for pod in pods["items"]:
            self._kubelet(pod, serving)

    def _start(self, deployment: dict[str, Any]) -> None:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
        env.update({
            "POD_NAME": "istiod-engine-tier", "POD_NAMESPACE": NAMESPACE, "SERVICE_ACCOUNT": "istiod",
            "KUBECONFIG": str(self.cluster.kubeconfig), "REVISION": env.get("REVISION", "default") or "default",
        })
        p = self.ports
        args = [
            str(engine_bin() / "pilot-discovery"), "discovery",
            "--kubeconfig", str(self.cluster.kubeconfig),
            "--httpAddr", f"127.0.0.1:{p.http}", "--httpsAddr", f"127.0.0.1:{p.https}",
            "--grpcAddr", f"127.0.0.1:{p.grpc}", "--secureGRPCAddr", f"127.0.0.1:{p.secure_grpc}",
            "--monitoringAddr", f"127.0.0.1:{p.monitoring}",
            "--tlsCertFile", str(self.cert), "--tlsKeyFile", str(self.key), "--caCertFile", str(self.ca),
            "--domain", "cluster.local", "--profile=false",
        ]
        run_dir = self.workdir / "run"
        run_dir.mkdir(exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()
        self._note(f"pilot-discovery started (pid {self.process.pid}, webhooks on {p.https})")

    def _kubelet(self, pod: dict[str, Any], serving: bool) -> None:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{meta['name']}"
        if meta.get("deletionTimestamp"):
            # What the kubelet does once the containers are gone: confirm the deletion.
            self.api.request("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                               "preconditions": {"uid": meta["uid"]}})
            self._note(f"pod {meta['name']} deleted")
            return
        if not pod["spec"].get("nodeName"):
            return  # not scheduled yet
        conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        want = "True" if serving else "False"
        if conditions.get("Ready") == want and pod["status"].get("phase") == "Running":
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        containers = pod["spec"]["containers"]
        status = {
            "phase": "Running",
            "startTime": pod.get("status", {}).get("startTime") or now,
            "conditions": [{"type": t, "status": s, "lastTransitionTime": now} for t, s in (
                ("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", want), ("Ready", want))],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": serving,
                                   "restartCount": 0, "started": True,
                                   "state": {"running": {"startedAt": now}}} for c in containers],
        }
        self.api.request("PATCH", f"{path}/status", {"status": status},
                         content_type="application/merge-patch+json")
        self._note(f"pod {meta['name']} Ready={want}")
