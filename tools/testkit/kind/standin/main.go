// Command standin is the kind tier's READINESS-ONLY stand-in for an image that cannot be built on this machine: one
// binary for all of them, its role the name it is run as, and the image sets AMBIENT_MESH_STANDIN to why the real
// image is missing.
//
//	ztunnel, pilot-agent  Istio's data plane (ztunnel: Rust, not on crates.io; proxyv2: Envoy): GET /healthz/ready
//	                      on :15021, the probe the ztunnel chart and the gateway/waypoint templates configure
//	kiali                 Istio's add-on (its module is not served here): GET /kiali/healthz on :20001
//	grafana               Istio's add-on (its module is not served here): GET /api/health on :3000
//
// What it does: answers that probe with 200 and every other path of that port with 501 and a page saying what it is,
// and otherwise idles until SIGTERM, whatever arguments it is given. What it does NOT do: carry, capture, proxy or
// encrypt any traffic, talk to istiod or istio-cni, show a graph or a dashboard, or read Prometheus. Every response
// carries an X-Ambient-Mesh-Standin header, so the stand-in is recognisable over the wire.
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
	what, addr, probe string
}

var roles = map[string]role{
	"ztunnel":     {"Istio's ztunnel", ":15021", "/healthz/ready"},
	"pilot-agent": {"Istio's pilot-agent", ":15021", "/healthz/ready"},
	"kiali":       {"Kiali", ":20001", "/kiali/healthz"},
	"grafana":     {"Grafana", ":3000", "/api/health"},
}

func main() {
	name := filepath.Base(os.Args[0])
	r, ok := roles[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "ambient-mesh stand-in: unknown role %q (run it as ztunnel, pilot-agent, kiali or grafana)\n",
			name)
		os.Exit(2)
	}
	why := os.Getenv("AMBIENT_MESH_STANDIN")
	if why == "" {
		why = "the real image cannot be built here"
	}
	banner := fmt.Sprintf("ambient-mesh stand-in: this is NOT %s; readiness-only stand-in (%s). "+
		"It answers GET %s on %s and carries no traffic.", r.what, why, r.probe, r.addr)
	args := os.Args[1:]
	first := ""
	if len(args) > 0 {
		first = args[0]
	}
	switch first {
	case "version", "--version", "-v":
		fmt.Println(banner)
		return
	case "help", "--help", "-h":
		fmt.Println(banner)
		fmt.Println("usage: " + name + " [any arguments]   serve " + r.probe + " on " + r.addr + " and idle until SIGTERM")
		fmt.Println("       " + name + " version|help      print this and exit")
		return
	case "wait", "request":
		// pilot-agent lifecycle hooks (postStart `wait`, preStop `request ... drain`): nothing to wait for or drain.
		fmt.Fprintln(os.Stderr, banner+" `"+first+"`: nothing to do.")
		return
	case "istio-iptables", "istio-clean-iptables", "istio-validation":
		// Sidecar init containers: a stand-in must not claim to have set up traffic capture.
		fmt.Fprintln(os.Stderr, banner+" `"+first+"` is not implemented: no traffic capture is set up.")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, banner)
	fmt.Fprintf(os.Stderr, "ambient-mesh stand-in: arguments ignored: %q\n", args)

	mux := http.NewServeMux()
	mux.HandleFunc(r.probe, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "ready (readiness-only stand-in for %s: carries no traffic)\n", r.what)
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
		fmt.Fprintln(os.Stderr, "ambient-mesh stand-in: signal received, exiting")
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := server.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
			os.Exit(1)
		}
	}
}
