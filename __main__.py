"""ambient-mesh: load and validate config, build the stack, export its outputs."""

from components.model.gateway_api import read_installed
from components.stack import build_stack, export, load_config

# read_installed: an existing cluster's Gateway API CRDs are checked (kubectl) before anything is applied.
export(build_stack(load_config(), gateway_api_reader=read_installed))
