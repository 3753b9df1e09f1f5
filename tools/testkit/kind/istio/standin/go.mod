module ambient-mesh.local/kind/istio-standin

go 1.26.0
