// kindnetd-standin: the project's own minimal stand-in for kind's kindnetd (docker.io/kindest/kindnetd), built
// because kindnetd's source is not served by the Go module proxy (it is a nested module of sigs.k8s.io/kind, left
// out of the kind module zip, and sigs.k8s.io/kind/images/kindnetd is 403 at every version). Written from kind's
// documented behaviour, not from its code. It does the three things a kind cluster needs for pod networking, per
// node, from the kindnet DaemonSet in kind's manifest (hostNetwork, NET_ADMIN + NET_RAW, /etc/cni/net.d mounted):
//
//   - writes /etc/cni/net.d/10-kindnet.conflist for this node's podCIDR(s): ptp with host-local IPAM, then portmap
//     (only when its inputs change, so a CNI that chains itself into the conflist, like istio-cni, stays chained);
//   - routes every other node's podCIDR(s) via that node's InternalIP;
//   - masquerades traffic leaving the pod subnets (POD_SUBNET) for a non-local destination outside them: nat
//     POSTROUTING -> KIND-MASQ-AGENT, in the iptables backend (nft or legacy) the node's kubelet uses.
//
// Not done (kindnetd does it): NetworkPolicy enforcement, and the apiserver watch (this polls the node list).
// Environment, as kind's manifest sets it: HOST_IP, POD_SUBNET (comma-separated), CONTROL_PLANE_ENDPOINT (host:port).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"
)

// Version names what this binary stands in for; set with -ldflags "-X main.Version=...".
var Version = "dev"

const (
	cniConfigPath = "/etc/cni/net.d/10-kindnet.conflist"
	masqChain     = "KIND-MASQ-AGENT"
	saDir         = "/var/run/secrets/kubernetes.io/serviceaccount"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	printCNI := flag.String("print-cni-config", "", "print the conflist written for these podCIDRs (comma-separated) and exit")
	mtu := flag.Int("mtu", 0, "with -print-cni-config: the MTU to put in it (0: none)")
	flag.Parse()
	if *showVersion {
		fmt.Printf("kindnetd-standin %s (ambient-mesh stand-in for kind's kindnetd)\n", Version)
		return
	}
	if *printCNI != "" {
		out, err := cniConfig(cniInputs{PodCIDRs: strings.Split(*printCNI, ","), MTU: *mtu})
		if err != nil {
			log.Fatal(err)
		}
		os.Stdout.Write(out)
		return
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.Printf("kindnetd-standin %s starting", Version)

	hostIP := os.Getenv("HOST_IP")
	podSubnets := splitList(os.Getenv("POD_SUBNET"))
	if hostIP == "" || len(podSubnets) == 0 {
		log.Fatal("HOST_IP and POD_SUBNET must be set")
	}
	for _, s := range podSubnets {
		if _, _, err := net.ParseCIDR(s); err != nil {
			log.Fatalf("POD_SUBNET: %v", err)
		}
	}
	api, err := newAPIClient(os.Getenv("CONTROL_PLANE_ENDPOINT"))
	if err != nil {
		log.Fatal(err)
	}
	mtu0 := eth0MTU()
	log.Printf("hostIP=%s podSubnets=%v apiserver=%s mtu=%d", hostIP, podSubnets, api.host, mtu0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	masq := newMasq(podSubnets)
	cni := &cniWriter{mtu: mtu0}
	nodeTick := time.NewTicker(10 * time.Second)
	masqTick := time.NewTicker(60 * time.Second)
	defer nodeTick.Stop()
	defer masqTick.Stop()
	masqFailures := 0
	syncMasq := func() {
		if err := masq.sync(); err != nil {
			masqFailures++
			log.Printf("masquerade rules: %v", err)
			if masqFailures > 3 {
				log.Fatal("masquerade rules failed more than 3 times in a row")
			}
			return
		}
		masqFailures = 0
	}
	syncMasq()
	for {
		if err := reconcile(ctx, api, cni, hostIP); err != nil {
			log.Printf("reconcile: %v", err)
		}
		select {
		case <-ctx.Done():
			log.Print("exiting")
			return
		case <-masqTick.C:
			syncMasq()
		case <-nodeTick.C:
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func isIPv6(s string) bool {
	if ip, _, err := net.ParseCIDR(s); err == nil {
		return ip.To4() == nil
	}
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() == nil
}

func eth0MTU() int {
	if i, err := net.InterfaceByName("eth0"); err == nil {
		return i.MTU
	}
	return 0 // ptp then leaves the MTU to the kernel
}

// --- the apiserver: GET /api/v1/nodes with the pod's service-account token -----------------------------------

type apiClient struct {
	host   string
	client *http.Client
}

func newAPIClient(endpoint string) (*apiClient, error) {
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	// Like kindnetd: the control-plane endpoint when it answers (no need to wait for kube-proxy's service
	// rules), else the in-cluster service address.
	if endpoint != "" {
		for i := 0; i < 5; i++ {
			if c, err := net.DialTimeout("tcp", endpoint, time.Second); err == nil {
				c.Close()
				host = endpoint
				break
			}
			log.Printf("apiserver %s not reachable, attempt %d", endpoint, i)
			time.Sleep(time.Duration(i) * time.Second)
		}
	}
	return &apiClient{
		host: host,
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		},
	}, nil
}

type node struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR  string   `json:"podCIDR"`
		PodCIDRs []string `json:"podCIDRs"`
	} `json:"spec"`
	Status struct {
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"status"`
}

func (n *node) internalIPs() []string {
	var ips []string
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			ips = append(ips, a.Address)
		}
	}
	return ips
}

func (n *node) podCIDRs() []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

func (a *apiClient) nodes(ctx context.Context) ([]node, error) {
	token, err := os.ReadFile(saDir + "/token") // re-read: bound tokens rotate
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+a.host+"/api/v1/nodes", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/nodes: %s", resp.Status)
	}
	var list struct {
		Items []node `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func reconcile(ctx context.Context, api *apiClient, cni *cniWriter, hostIP string) error {
	nodes, err := api.nodes(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for i := range nodes {
		n := &nodes[i]
		ips := n.internalIPs()
		cidrs := n.podCIDRs()
		if contains(ips, hostIP) {
			if len(cidrs) == 0 {
				log.Printf("this node %s has no podCIDR yet", n.Metadata.Name)
				continue
			}
			if err := cni.write(cidrs); err != nil {
				errs = append(errs, err.Error())
			}
			continue
		}
		for _, cidr := range cidrs {
			for _, ip := range ips {
				if isIPv6(ip) == isIPv6(cidr) {
					if err := ensureRoute(cidr, ip); err != nil {
						errs = append(errs, err.Error())
					}
					break // one InternalIP per family, as kindnetd
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --- routes to the other nodes' pod CIDRs ----------------------------------------------------------------------

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func ensureRoute(cidr, via string) error {
	family := "-4"
	if isIPv6(cidr) {
		family = "-6"
	}
	cur, err := run("ip", family, "route", "show", "exact", cidr)
	if err != nil {
		return err
	}
	if strings.Contains(" "+cur+" ", " via "+via+" ") && strings.Count(strings.TrimSpace(cur), "\n") == 0 {
		return nil
	}
	log.Printf("route %s via %s (was: %q)", cidr, via, strings.TrimSpace(cur))
	_, err = run("ip", family, "route", "replace", cidr, "via", via)
	return err
}

// --- the CNI config --------------------------------------------------------------------------------------------

type cniInputs struct {
	PodCIDRs []string
	MTU      int
}

type cniWriter struct {
	mtu  int
	last *cniInputs
}

func (w *cniWriter) write(podCIDRs []string) error {
	in := cniInputs{PodCIDRs: podCIDRs, MTU: w.mtu}
	if w.last != nil && reflect.DeepEqual(*w.last, in) {
		return nil
	}
	data, err := cniConfig(in)
	if err != nil {
		return err
	}
	// A name CNI does not load first, then an atomic rename.
	tmp := cniConfigPath + ".temp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, cniConfigPath); err != nil {
		return err
	}
	log.Printf("wrote %s for %v", cniConfigPath, podCIDRs)
	w.last = &in
	return nil
}

func cniConfig(in cniInputs) ([]byte, error) {
	var routes []map[string]string
	var ranges [][]map[string]string
	v4, v6 := false, false
	for _, c := range in.PodCIDRs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return nil, err
		}
		ranges = append(ranges, []map[string]string{{"subnet": c}})
		if isIPv6(c) {
			v6 = true
		} else {
			v4 = true
		}
	}
	if v4 {
		routes = append(routes, map[string]string{"dst": "0.0.0.0/0"})
	}
	if v6 {
		routes = append(routes, map[string]string{"dst": "::/0"})
	}
	ptp := map[string]any{
		"type":   "ptp",
		"ipMasq": false,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": "/run/cni-ipam-state",
			"routes":  routes,
			"ranges":  ranges,
		},
	}
	if in.MTU > 0 {
		ptp["mtu"] = in.MTU
	}
	conf := map[string]any{
		"cniVersion": "0.3.1",
		"name":       "kindnet",
		"plugins": []any{
			ptp,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	return append(out, '\n'), err
}

// --- IP masquerade ---------------------------------------------------------------------------------------------

type masqAgent struct {
	v4, v6 []string // no-masquerade destinations: the cluster's pod subnets, per family
}

func newMasq(podSubnets []string) *masqAgent {
	m := &masqAgent{}
	for _, s := range podSubnets {
		if isIPv6(s) {
			m.v6 = append(m.v6, s)
		} else {
			m.v4 = append(m.v4, s)
		}
	}
	return m
}

// iptablesBackend picks nft or legacy the way Kubernetes' iptables-wrapper does: the backend holding kubelet's
// canary chains, else the one with more rules, else nft.
func iptablesBackend(v6 bool) string {
	save := "iptables"
	if v6 {
		save = "ip6tables"
	}
	count := func(mode string) (hint bool, rules int) {
		out, _ := exec.Command(save + "-" + mode + "-save").Output()
		s := string(out)
		hint = strings.Contains(s, "KUBE-IPTABLES-HINT") || strings.Contains(s, "KUBE-KUBELET-CANARY")
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "-") {
				rules++
			}
		}
		return
	}
	nftHint, nftRules := count("nft")
	legacyHint, legacyRules := count("legacy")
	switch {
	case nftHint:
		return save + "-nft"
	case legacyHint:
		return save + "-legacy"
	case legacyRules > nftRules:
		return save + "-legacy"
	}
	return save + "-nft"
}

func (m *masqAgent) sync() error {
	for _, fam := range []struct {
		v6      bool
		subnets []string
	}{{false, m.v4}, {true, m.v6}} {
		if len(fam.subnets) == 0 {
			continue
		}
		ipt := iptablesBackend(fam.v6)
		ensure := func(chain string, rule ...string) error {
			check := append([]string{"-w", "5", "-t", "nat", "-C", chain}, rule...)
			if _, err := run(ipt, check...); err == nil {
				return nil
			}
			_, err := run(ipt, append([]string{"-w", "5", "-t", "nat", "-A", chain}, rule...)...)
			return err
		}
		if _, err := run(ipt, "-w", "5", "-t", "nat", "-S", masqChain); err != nil {
			if _, err := run(ipt, "-w", "5", "-t", "nat", "-N", masqChain); err != nil {
				return err
			}
		}
		for _, s := range fam.subnets {
			if err := ensure(masqChain, "-d", s, "-m", "comment", "--comment",
				"kindnetd-standin: pod subnet, no masquerade", "-j", "RETURN"); err != nil {
				return err
			}
		}
		if err := ensure(masqChain, "-m", "comment", "--comment",
			"kindnetd-standin: leaves the pod subnets, masquerade", "-j", "MASQUERADE"); err != nil {
			return err
		}
		if err := ensure("POSTROUTING", "-m", "addrtype", "!", "--dst-type", "LOCAL", "-m", "comment", "--comment",
			"kindnetd-standin: non-local destinations", "-j", masqChain); err != nil {
			return err
		}
	}
	return nil
}
