"""ambient-mesh: load and validate config, build the stack, export its outputs."""

from components.model.gateway_api import read_installed
from components.stack import build_stack, export, load_config, one_line_errors

with one_line_errors():
    # read_installed: an existing cluster's Gateway API CRDs are checked (kubectl) before anything is applied.
    stack = build_stack(load_config(), gateway_api_reader=read_installed)
export(stack)
