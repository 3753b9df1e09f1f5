module ambient-mesh.local/kind/addon-standin

go 1.26.0
