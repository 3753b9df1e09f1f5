// Command standin is the kind tier's READINESS-ONLY stand-in for an Istio data-plane image that cannot be built on
// this machine (ztunnel: Rust, not on crates.io; proxyv2: Envoy). One binary serves both images; its role is the
// name it is run as (/usr/local/bin/ztunnel or /usr/local/bin/pilot-agent) and the image sets AMBIENT_MESH_STANDIN
// to why the real image is missing.
//
// What it does: answers GET /healthz/ready on :15021 with 200 (the readiness/startup probe the ztunnel chart and
// the gateway/waypoint templates configure) and otherwise idles until SIGTERM, whatever arguments it is given.
// What it does NOT do: carry, capture, proxy or encrypt any traffic, talk to istiod, or connect to istio-cni. Every
// response carries an X-Ambient-Mesh-Standin header so the stand-in is recognisable over the wire.
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

const readyAddr = ":15021"

func main() {
	role := filepath.Base(os.Args[0])
	why := os.Getenv("AMBIENT_MESH_STANDIN")
	if why == "" {
		why = "the real image cannot be built here"
	}
	banner := fmt.Sprintf("ambient-mesh stand-in: this is NOT Istio's %s; readiness-only stand-in (%s). "+
		"It answers GET /healthz/ready on %s and carries no traffic.", role, why, readyAddr)
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
		fmt.Println("usage: " + role + " [any arguments]   serve readiness on " + readyAddr + " and idle until SIGTERM")
		fmt.Println("       " + role + " version|help      print this and exit")
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
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "ready (readiness-only stand-in for %s: carries no traffic)\n", role)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not served: readiness-only stand-in for "+role+" ("+why+")", http.StatusNotFound)
	})
	header := strings.NewReplacer("\r", " ", "\n", " ").Replace(role + ": " + why)
	server := &http.Server{
		Addr: readyAddr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Ambient-Mesh-Standin", header)
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- server.ListenAndServe() }()
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "ambient-mesh stand-in: readiness server failed: %v\n", err)
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
