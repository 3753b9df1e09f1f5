"""The one interface to the outside world: commands (kubectl, pulumi), HTTP and sleep; tests replay it."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# --- the one interface to the outside world -----------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class HttpResult:
    url: str
    status: int | None
    body: str = ""
    error: str | None = None


class Runner(Protocol):
    """Everything verify does outside its own process. Tests replace it with recorded outputs."""

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result: ...

    def http_get(self, url: str, timeout: float = 10.0) -> HttpResult: ...

    def sleep(self, seconds: float) -> None: ...


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SystemRunner:
    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            return Result(tuple(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Result(tuple(argv), 124, "", f"timed out after {timeout:.0f}s")
        return Result(tuple(argv), done.returncode, done.stdout, done.stderr)

    def http_get(self, url: str, timeout: float = 10.0) -> HttpResult:
        # This machine's own ports (kind's host port) never go through an HTTP(S) proxy of the environment:
        # urllib bypasses one only for what NO_PROXY lists, and many set a proxy without localhost in it.
        opener = _DIRECT if _loopback(url) else urllib.request.build_opener()  # the environment's proxies, now
        try:
            with opener.open(url, timeout=timeout) as response:
                return HttpResult(url, response.status, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as error:
            return HttpResult(url, error.code, error.read().decode("utf-8", "replace"), str(error))
        except (urllib.error.URLError, OSError) as error:
            return HttpResult(url, None, "", str(getattr(error, "reason", error)))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Kubectl:
    """`kubectl [--kubeconfig K] [--context C] ...` through the runner."""

    def __init__(self, runner: Runner, kubeconfig: str | None = None, context: str | None = None) -> None:
        self.runner = runner
        self.prefix = ["kubectl"]
        if kubeconfig:
            self.prefix += ["--kubeconfig", kubeconfig]
        if context:
            self.prefix += ["--context", context]

    def __call__(self, *args: str, timeout: float = 60.0) -> Result:
        result = self.runner.run([*self.prefix, *args], timeout=timeout)
        if result.returncode != 0:
            unreachable = _UNREACHABLE.search(result.stderr)
            if unreachable:
                raise ClusterUnreachable(unreachable.group(0).strip())
        return result

    def json(self, *args: str) -> Any:
        result = self(*args, "-o", "json")
        if result.returncode != 0:
            raise KubectlError(result)
        return json.loads(result.stdout)


# kubectl's own words when it cannot reach the API server (not a curl error inside `kubectl exec`).
_UNREACHABLE = re.compile(r"^(The connection to the server \S+ was refused.*|Unable to connect to the server: .*)$",
                          re.MULTILINE)


class ClusterUnreachable(Exception):
    """The API server did not answer: every further check would only repeat that."""


class KubectlError(Exception):
    def __init__(self, result: Result) -> None:
        self.result = result
        command = " ".join(result.argv)
        super().__init__(f"`{command}` exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")


