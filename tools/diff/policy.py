"""The policy pack (policy/) over a stack's mock graph, as the engine would run it during a preview: every resource
policy on every resource, every stack policy on the whole stack. A stack's pack config is policy/config.<stack>.json
when there is one (the zero-trust stack turns its zero-trust policies on there), else the pack's defaults.

The pack's PolicyPack is never constructed (it would serve the engine and never return): policy/__main__.py is
loaded under another module name and only its `policies()` are run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tools.render import REPO

POLICY_DIR = REPO / "policy"


@dataclass
class PolicyResult:
    stack: str
    config_file: str | None
    policies: int
    violations: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.violations and self.error is None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyResult:
        return cls(**data)


_pack: ModuleType | None = None


def load_pack(directory: Path = POLICY_DIR) -> ModuleType:
    global _pack
    if _pack is None:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))  # as when Pulumi runs the pack: its directory is on the path
        spec = importlib.util.spec_from_file_location("ambient_mesh_policy_pack_for_diff", directory / "__main__.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"no policy pack in {directory}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _pack = module
    return _pack


def _options() -> Any:
    from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions

    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def run_pack(stack: str, registrations: Iterable[Any], directory: Path = POLICY_DIR) -> PolicyResult:
    """Every policy of the pack over one stack's registrations (type, name, urn, inputs)."""
    config_path = directory / f"config.{stack}.json"
    configs: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config_label = str(config_path.relative_to(REPO)) if config_path.exists() else None
    try:
        policies = load_pack(directory).policies()
    except Exception as error:  # noqa: BLE001 - a broken pack is a result to report, not a crash of the diff
        return PolicyResult(stack, config_label, 0, error=f"the policy pack did not load: {error}")
    registrations = list(registrations)
    result = PolicyResult(stack, config_label, len(policies))
    for policy in policies:
        try:
            messages = _run_policy(policy, configs.get(policy.name), registrations)
        except Exception as error:  # noqa: BLE001 - a policy that crashes is reported, the others still run
            messages = [f"the policy raised {type(error).__name__}: {error}"]
        if messages:
            result.violations[policy.name] = messages
    return result


def _run_policy(policy: Any, config: Any, registrations: list[Any]) -> list[str]:
    """The messages one policy reports, run as the engine runs it (props wrapped in the SDK's proxies)."""
    from pulumi_policy import (
        PolicyResource,
        ResourceValidationArgs,
        ResourceValidationPolicy,
        StackValidationArgs,
        StackValidationPolicy,
    )
    from pulumi_policy.policy import _NotApplicableError
    from pulumi_policy.proxy import unknown_checking_proxy

    messages: list[str] = []

    def report(message: str, _urn: str | None) -> None:
        messages.append(message)

    if isinstance(policy, ResourceValidationPolicy):
        for reg in registrations:
            policy.validate(ResourceValidationArgs(reg.type, unknown_checking_proxy(dict(reg.inputs)), reg.urn,
                                                   reg.name, _options(), None, config), report)
    elif isinstance(policy, StackValidationPolicy):
        resources = [PolicyResource(reg.type, unknown_checking_proxy(dict(reg.inputs)), reg.urn, reg.name,
                                    _options(), None, None, [], {}) for reg in registrations]
        try:
            policy.validate(StackValidationArgs(resources, config), report)
        except _NotApplicableError:
            return []
    return messages
