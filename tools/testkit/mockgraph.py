"""Run the stack under Pulumi mocks and record every registration: the graph without a cluster or an engine."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.resource
from pulumi.runtime import mocks, rpc
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.sync_await import _ensure_event_loop

from components.model.config import PROJECT, StackConfig
from components.stack import AmbientMeshStack, build_stack, stack_outputs


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    additional_secret_outputs: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    delete_before_replace: bool = False

    @property
    def implicit_dependencies(self) -> set[str]:
        return {urn for urns in self.property_dependencies.values() for urn in urns}

    @property
    def explicit_dependencies(self) -> set[str]:
        """URNs named by depends_on: dependencies that no input carries."""
        return set(self.dependencies) - self.implicit_dependencies


class EchoMocks(mocks.Mocks):
    """Every resource's outputs are its inputs; no call is expected (the stack makes none)."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"unexpected provider call {args.token}")


class RecordingMonitor(mocks.MockMonitor):
    """A MockMonitor that keeps type, name, parent, dependencies, provider and inputs of every registration."""

    def __init__(self, mock: mocks.Mocks) -> None:
        super().__init__(mock)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                custom=request.custom,
                provider=request.provider,
                dependencies=list(request.dependencies),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                property_dependencies={key: list(deps.urns) for key, deps in request.propertyDependencies.items()},
                inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                delete_before_replace=request.deleteBeforeReplace,
            ))
        return response


@dataclass
class Graph:
    registrations: list[Registration]
    stack: AmbientMeshStack | None
    outputs: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.registrations)

    def get(self, name: str) -> Registration:
        found = [r for r in self.registrations if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} registrations named {name!r}")
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def names(self, urns: set[str] | list[str]) -> set[str]:
        return {self.by_urn(urn).name for urn in urns}

    def depends_on(self, name: str) -> set[str]:
        """Names of the resources that `name` waits for directly (inputs and depends_on)."""
        return self.names(self.get(name).dependencies)

    def explicit(self, name: str) -> set[str]:
        return self.names(self.get(name).explicit_dependencies)

    def waits_for(self, name: str) -> set[str]:
        """Every resource that `name` waits for, directly or through others."""
        seen: set[str] = set()
        todo = list(self.get(name).dependencies)
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            todo.extend(self.by_urn(urn).dependencies)
        return self.names(seen)

    def children(self, parent_name: str) -> list[Registration]:
        parent = self.get(parent_name).urn
        return [r for r in self.registrations if r.parent == parent]

    def component_of(self, registration: Registration) -> Registration | None:
        """The nearest ambient-mesh component above a resource."""
        urn = registration.parent
        while urn:
            parent = self.by_urn(urn)
            if parent.type.startswith(f"{PROJECT}:"):
                return parent
            urn = parent.parent
        return None


_graphs: dict[tuple[StackConfig, str], Graph] = {}


def run_stack(config: StackConfig, stack_name: str = "dev") -> Graph:
    """The graph of one config, built once per process: the program is deterministic and callers only read it."""
    key = (config, stack_name)
    if key not in _graphs:
        _graphs[key] = build_graph(config, stack_name)
    return _graphs[key]


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call at once on the calling thread. The SDK hands every monitor call to the loop's executor, to
    wait on gRPC; the mock monitor answers synchronously, so the thread hop is pure overhead (a quarter of a graph)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine, as a thread pool would
            future.set_exception(error)
        return future


def record(program: Callable[[], Any], stack_name: str = "dev") -> tuple[list[Registration], Any]:
    """Run `program` under mocks (preview=False so every apply runs); return what it registered and what its
    returned Output resolved to."""
    echo = EchoMocks()
    monitor = RecordingMonitor(echo)
    pulumi.runtime.set_mocks(echo, project=PROJECT, stack=stack_name, preview=False, monitor=monitor)
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(program()).apply(lambda value: result.update(value=value))

    # The SDK walks the Python stack for every resource to tell the engine where it was declared; under mocks
    # nobody reads that, and it is a quarter of the time a graph takes.
    stack_trace = pulumi.runtime.resource._get_stack_trace
    pulumi.runtime.resource._get_stack_trace = source_pb2.StackTrace
    _ensure_event_loop().set_default_executor(InlineExecutor(max_workers=1))
    try:
        run()
    finally:
        pulumi.runtime.resource._get_stack_trace = stack_trace
    return monitor.registrations, result.get("value")


def build_graph(config: StackConfig, stack_name: str = "dev") -> Graph:
    """Build the whole stack under mocks and return what it registered, with the stack's outputs."""
    built: list[AmbientMeshStack] = []

    def program() -> pulumi.Output[Any]:
        built.append(build_stack(config))
        return pulumi.Output.all(**stack_outputs(built[0]))

    registrations, outputs = record(program, stack_name)
    return Graph(registrations, built[0], outputs)


def build_component(program: Callable[[], Any]) -> Graph:
    """One component (or a few) built alone under mocks, e.g. with a slice config of its own."""
    registrations, _ = record(program)
    return Graph(registrations, None)


MAIN = Path(__file__).resolve().parents[2] / "__main__.py"


def run_main(config: dict[str, str]) -> tuple[list[Registration], Exception | None]:
    """The project's own __main__.py under mocks with this stack config (`ambient-mesh:<section>` -> JSON), as `pulumi
    up` would run it: what it registered, and the error it stopped with (None when it ran through)."""
    echo = EchoMocks()
    monitor = RecordingMonitor(echo)
    pulumi.runtime.set_mocks(echo, project=PROJECT, stack="dev", preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config)

    @pulumi.runtime.test
    def program() -> None:
        exec(compile(MAIN.read_text(encoding="utf-8"), "__main__.py", "exec"), {"__name__": "__main__"})  # noqa: S102

    try:
        program()
        return monitor.registrations, None
    except Exception as error:  # noqa: BLE001 - handed to the test, which says which error it expects
        return monitor.registrations, error
    finally:
        pulumi.runtime.set_all_config({})
