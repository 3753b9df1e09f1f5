"""ambient-mesh: load and validate config, build the stack, export its outputs."""

from components.config import load_config
from components.stack import build_stack, export

export(build_stack(load_config()))
