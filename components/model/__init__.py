"""The ground floor: what the mesh is, as plain data and pure functions, with no Pulumi import (a lint contract).

versions → catalog → config → topology → policy, charts, kind, specs, gateway_api → validate → outputs.
The ComponentResources in components/ only turn this into resources.
"""
