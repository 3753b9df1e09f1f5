module ambient-mesh.local/kind/standin

go 1.26.0
