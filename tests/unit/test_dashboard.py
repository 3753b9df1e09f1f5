"""make dashboard (tools/dashboard.py): the add-on's Service forwarded to 127.0.0.1 through the stack's own kubeconfig,
its URL printed; an add-on the stack does not run is refused with the way to add it."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Sequence
from typing import Any

from tools import dashboard
from tools.verify.runner import Result


class Outputs:
    """`pulumi stack output --json`, and nothing else."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Result:
        assert list(argv[:3]) == ["pulumi", "stack", "output"], argv
        return Result(tuple(argv), 0, json.dumps(self.outputs), "")


def outputs(addons: list[str]) -> dict[str, Any]:
    return {"kubeconfig": "apiVersion: v1\nkind: Config\n", "verify": {"addons": addons, "context": "kind-x"}}


def test_it_forwards_the_addons_service_on_loopback_and_prints_the_url() -> None:
    seen: list[list[str]] = []

    def forward(argv: list[str]) -> int:
        seen.append(argv)
        return 0
    out = io.StringIO()
    code = dashboard.main(["kiali", "--port", "28001"], Outputs(outputs(["prometheus", "kiali"])), run=forward,
                          out=out)
    assert code == 0
    [argv] = seen
    port, page = dashboard.DASHBOARDS["kiali"]
    assert argv[argv.index("port-forward"):] == ["port-forward", "-n", "istio-system", "svc/kiali", f"28001:{port}",
                                                  "--address", "127.0.0.1"]
    assert argv[1] == "--kubeconfig" and "--context" not in argv  # the stack's own kubeconfig, not kubectl's
    assert f"http://127.0.0.1:28001{page}" in out.getvalue()


def test_a_taken_port_moves_to_the_next_free_one() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        taken = holder.getsockname()[1]
        assert dashboard.local_port(taken) != taken and dashboard.free(dashboard.local_port(taken))


def test_an_addon_the_stack_does_not_run_is_refused() -> None:
    out = io.StringIO()
    code = dashboard.main(["grafana"], Outputs(outputs(["prometheus"])), run=lambda argv: 0, out=out)
    assert code == 2 and "does not run grafana" in out.getvalue() and "ambient-mesh:observability" in out.getvalue()
