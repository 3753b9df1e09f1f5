"""The ambient-mesh policy pack: mesh_policies' plain checks wired into CrossGuard policies.

    pulumi preview --stack dev --policy-pack policy
    pulumi preview --stack dev --policy-pack policy --policy-pack-config policy/config.zero-trust.json

Pulumi runs this file as `__main__` in the pack's own virtualenv (policy/venv, from requirements.txt); only then is
the PolicyPack constructed (it serves the engine and never returns). Tests import `policies()` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mesh_policies as mp
import pulumi
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

PACK_NAME = "ambient-mesh"
PROJECT = "ambient-mesh"

ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[mp.Resource], Mapping[str, Any]], list[mp.Violation]]

_STRING_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "default": []}
_ZERO_TRUST_SCHEMA = PolicyConfigSchema(properties={
    "zeroTrust": {"type": "boolean", "default": False,
                  "description": "Require AuthorizationPolicies and STRICT mTLS (off until the stack has them)"},
})


def plain(value: Any) -> Any:
    """The SDK hands props wrapped in proxies that raise on unknown values; the checks want plain data in which
    unknowns stay visible (as the engine's sentinels), so they can skip them instead of giving up on everything."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        try:
            raw = value["__target"]  # the proxy's wrapped dict; a plain dict has no such key
        except KeyError:
            raw = value
        return {key: plain(raw[key]) for key in raw}
    if isinstance(value, Sequence):
        try:
            raw_list = value["__target"]  # type: ignore[call-overload]
        except (KeyError, TypeError):
            raw_list = value
        return [plain(item) for item in raw_list]
    return value


def stack_cluster() -> Any:
    """The stack's own `ambient-mesh:cluster` config (the engine hands the stack's config to policy packs)."""
    try:
        return pulumi.Config(PROJECT).get_object("cluster")
    except Exception:  # noqa: BLE001 - no stack config here (unit tests, `pulumi policy publish`): fall back
        return None


def _resource_policy(name: str, description: str, check: ResourceCheck, *, severity: Severity,
                     remediation: str, config_schema: PolicyConfigSchema | None = None) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, plain(args.props), args.get_config()):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=config_schema, severity=severity, remediation_steps=remediation, tags=["ambient-mesh"])


def _stack_policy(name: str, description: str, check: StackCheck, *, severity: Severity, remediation: str,
                  config_schema: PolicyConfigSchema | None = None,
                  applies: Callable[[Mapping[str, Any]], str | None] | None = None) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = args.get_config()
        reason = applies(config) if applies is not None else None
        if reason is not None:
            args.not_applicable(reason)
        resources = [mp.Resource(r.resource_type, plain(r.props), r.urn, r.name) for r in args.resources]
        for violation in check(resources, config):
            report_violation(violation.message, violation.urn)

    return StackValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=config_schema, severity=severity, remediation_steps=remediation, tags=["ambient-mesh"])


def _zero_trust_off(config: Mapping[str, Any]) -> str | None:
    return None if config.get("zeroTrust") is True else "zeroTrust is off in this policy's config"


def policies() -> list[Policy]:
    return [
        _resource_policy(
            "namespace-single-dataplane",
            "A namespace is in ambient mode or uses sidecars, never both.",
            lambda type_, props, _config: mp.check_namespace_single_dataplane(type_, props),
            severity=Severity.HIGH,
            remediation="Remove istio-injection=enabled from an ambient namespace (or the ambient label from a "
                        "sidecar one).",
        ),
        _stack_policy(
            "namespace-single-dataplane-across-resources",
            "No namespace gets the ambient label from one resource and sidecar injection from another.",
            lambda resources, _config: mp.check_single_dataplane_across_resources(resources),
            severity=Severity.HIGH,
            remediation="Keep one data plane per namespace: drop one of the two labelling resources.",
        ),
        _stack_policy(
            "app-namespaces-enrolled",
            "Every namespace with app workloads is enrolled in the mesh (ambient or sidecar) unless exempted.",
            lambda resources, config: mp.check_app_namespaces_enrolled(
                resources, mp.string_list(config.get("exemptNamespaces"))),
            severity=Severity.HIGH,
            remediation="Label the namespace istio.io/dataplane-mode=ambient (a NamespacePatch for one the stack "
                        "does not own), or add it to exemptNamespaces.",
            config_schema=PolicyConfigSchema(properties={"exemptNamespaces": {
                **_STRING_LIST, "description": "Namespaces whose workloads may stay outside the mesh"}}),
        ),
        _resource_policy(
            "container-images-pinned",
            "Every container image is pinned by a version tag or a digest (never latest, never untagged).",
            lambda type_, props, _config: mp.check_images_pinned(type_, props),
            severity=Severity.MEDIUM,
            remediation="Name the image with an explicit tag (registry/name:1.2.3) or digest (@sha256:...).",
        ),
        _resource_policy(
            "helm-release-version-pinned",
            "Every Helm release pins one exact chart version.",
            lambda type_, props, _config: mp.check_release_version_pinned(type_, props),
            severity=Severity.MEDIUM,
            remediation="Set the release's version to an exact chart version (x.y.z).",
        ),
        _resource_policy(
            "helm-release-chart-repository",
            "Helm releases take their charts only from the configured chart repository.",
            lambda type_, props, config: mp.check_release_chart_repository(
                type_, props,
                chart_repository=str(config.get("chartRepository") or mp.DEFAULT_CHART_REPOSITORY),
                local_chart_directories=mp.string_list(config.get("localChartDirectories"))),
            severity=Severity.HIGH,
            remediation="Take the chart from the configured repository, or configure this policy's "
                        "chartRepository / localChartDirectories.",
            config_schema=PolicyConfigSchema(properties={
                "chartRepository": {"type": "string", "default": mp.DEFAULT_CHART_REPOSITORY,
                                    "description": "http(s):// or oci:// chart repository, or a local directory"},
                "localChartDirectories": {**_STRING_LIST,
                                          "description": "Local directories of charts also accepted"},
            }),
        ),
        _resource_policy(
            "no-loadbalancer-on-kind",
            "No LoadBalancer Service on a kind cluster (kind has no load balancer).",
            lambda type_, props, config: mp.check_no_loadbalancer_on_kind(
                type_, props, mp.resolve_cluster_provider(config.get("clusterProvider"), stack_cluster())),
            severity=Severity.MEDIUM,
            remediation="Use a NodePort Service (kind maps it to the host), e.g. values.service.type: NodePort for "
                        "the Istio gateway chart.",
            config_schema=PolicyConfigSchema(properties={"clusterProvider": {
                "type": "string", "enum": list(mp.CLUSTER_PROVIDERS),
                "description": "kind or existing; unset: the stack's ambient-mesh:cluster.provider, else kind"}}),
        ),
        _stack_policy(
            "zero-trust-authorization-policy",
            "With zero trust on, an AuthorizationPolicy covers every enrolled namespace.",
            lambda resources, config: mp.check_zero_trust_authorization(resources, zero_trust=True),
            severity=Severity.HIGH,
            remediation="Add a namespace-wide AuthorizationPolicy (no selector) to each enrolled namespace, or a "
                        "mesh-wide one in istio-system.",
            config_schema=_ZERO_TRUST_SCHEMA,
            applies=_zero_trust_off,
        ),
        _stack_policy(
            "zero-trust-strict-mtls",
            "With zero trust on, mesh-wide PeerAuthentication in istio-system is STRICT and nothing weakens it.",
            lambda resources, config: mp.check_zero_trust_strict_mtls(resources, zero_trust=True),
            severity=Severity.HIGH,
            remediation="Add PeerAuthentication 'default' in istio-system with spec.mtls.mode STRICT; remove "
                        "PERMISSIVE/DISABLE overrides.",
            config_schema=_ZERO_TRUST_SCHEMA,
            applies=_zero_trust_off,
        ),
    ]


if __name__ == "__main__":
    PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY,
               description="Istio ambient mesh invariants for the ambient-mesh stack")
