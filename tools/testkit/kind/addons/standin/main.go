// Command standin is the kind tier's READINESS-ONLY stand-in for an add-on image of Istio's samples/addons that
// cannot be built on this machine (Kiali, Grafana: their modules are not served by the Go module proxy here). One
// binary serves both; its role is the name it is run as (kiali or grafana) and the image sets AMBIENT_MESH_STANDIN to
// why the real image is missing.
//
// What it does: answers the probe the add-on's Deployment configures (kiali: GET /kiali/healthz on :20001; grafana:
// GET /api/health on :3000) and, on every other path of that port, a page that says it is a stand-in, so a
// dashboard session shows plainly what it reached. What it does NOT do: show a graph or a dashboard, read
// Prometheus, or talk to the Kubernetes API. Every response carries an X-Ambient-Mesh-Standin header.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type role struct {
	addr, probe string
}

var roles = map[string]role{
	"kiali":   {addr: ":20001", probe: "/kiali/healthz"},
	"grafana": {addr: ":3000", probe: "/api/health"},
}

func main() {
	name := filepath.Base(os.Args[0])
	r, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "ambient-mesh stand-in: unknown role %q (run it as kiali or grafana)\n", name)
		os.Exit(2)
	}
	why := os.Getenv("AMBIENT_MESH_STANDIN")
	if why == "" {
		why = "the real image cannot be built here"
	}
	banner := fmt.Sprintf("ambient-mesh stand-in: this is NOT %s; readiness-only stand-in (%s). It answers GET %s on %s "+
		"and shows nothing of the mesh.", name, why, r.probe, r.addr)
	if len(os.Args) > 1 && strings.TrimLeft(os.Args[1], "-") == "version" {
		fmt.Println(banner)
		return
	}
	fmt.Fprintln(os.Stderr, banner)
	fmt.Fprintf(os.Stderr, "ambient-mesh stand-in: arguments ignored: %q\n", os.Args[1:])

	mux := http.NewServeMux()
	mux.HandleFunc(r.probe, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"standin\": %q}\n", name+": "+why)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotImplemented)
		fmt.Fprintln(w, banner)
	})
	header := strings.NewReplacer("\r", " ", "\n", " ").Replace(name + ": " + why)
	server := &http.Server{
		Addr: r.addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Ambient-Mesh-Standin", header)
			mux.ServeHTTP(w, req)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- server.ListenAndServe() }()
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "ambient-mesh stand-in: server failed: %v\n", err)
		os.Exit(1)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := server.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
			os.Exit(1)
		}
	}
}
