// The kind tier's stand-in for Docker Hub: distribution's registry (github.com/distribution/distribution/v3, the
// registry Docker Hub's protocol is defined by) on a loopback address over plain HTTP, storing on disk so pushed
// images survive restarts. Only the filesystem storage driver is linked in (cmd/registry links every cloud driver).
// Built by tools/testkit/bootstrap-kind.sh (piece registry); run by tools/testkit/kind/registry.sh.
//
// Usage: registry -addr 127.0.0.1:5501 -root DIR [-pidfile FILE]   (REGISTRY_* variables override the config)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5501", "listen address")
	root := flag.String("root", "", "storage directory (required)")
	pidfile := flag.String("pidfile", "", "file to write the process id to, removed on a clean exit")
	flag.Parse()
	if *root == "" {
		fail(fmt.Errorf("-root is required"))
	}
	// No tracing collector runs here: without this the OTLP exporter retries localhost:4318 forever.
	if os.Getenv("OTEL_TRACES_EXPORTER") == "" {
		os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	// Through Parse, not a struct literal: Parse fills the defaults (catalog and tag-list limits) and applies
	// REGISTRY_* environment overrides. %q gives YAML-safe double-quoted strings. A fixed http.secret (it signs
	// upload state): one instance on loopback, and a random one would log a warning at every start.
	config, err := configuration.Parse(strings.NewReader(fmt.Sprintf(`version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: %q}
  cache: {blobdescriptor: inmemory}
http:
  addr: %q
  secret: ambient-mesh-kind-tier
  draintimeout: 5s
`, *root, *addr)))
	if err != nil {
		fail(err)
	}
	reg, err := registry.NewRegistry(context.Background(), config)
	if err != nil {
		fail(err)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fail(err)
		}
		defer os.Remove(*pidfile)
	}
	// Returns after SIGTERM/SIGINT once connections are drained (draintimeout), so the deferred removal runs.
	if err := reg.ListenAndServe(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "registry:", err)
	os.Exit(1)
}
