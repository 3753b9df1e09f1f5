"""Test and CI infrastructure, apart from the commands a user runs (tools/verify, render, graph):

- mockgraph.py: the program under Pulumi mocks with a recording monitor (also what render and graph run on);
- schemas.py: Istio's and Gateway API's CRD schemas from their pinned Go modules (`python -m tools.testkit.schemas
  fetch`), and strict validation of rendered objects;
- bootstrap-engine.sh, engine-env.sh, engine/: the engine tier (Pulumi CLI, providers, kwok) built from Go modules;
- lint-workflows.sh, build-actionlint.sh: actionlint for .github/workflows.
"""
