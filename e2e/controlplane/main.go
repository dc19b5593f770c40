// Command controlplane is the Kubernetes control plane of finops-operator's
// end-to-end tests: one multi-call binary, built from the k8s.io/kubernetes
// module pinned in go.mod, that runs
//
//	controlplane etcd --data-dir DIR --client-url URL --peer-url URL
//	controlplane kube-apiserver FLAGS...          (the real kube-apiserver)
//	controlplane kube-controller-manager FLAGS... (the real kube-controller-manager)
//	controlplane kubectl ARGS...                  (also when called through a link named kubectl)
//	controlplane pki --dir DIR                    (CA, serving and service-account keys)
//	controlplane version
//
// Nothing here changes how the upstream commands behave: each subcommand is the
// upstream main() of that command. scripts/e2e-cluster.sh chooses the flags.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
	_ "time/tzdata" // for CronJob time zones, as upstream

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"

	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: controlplane etcd|kube-apiserver|kube-controller-manager|kubectl|pki|version [args...]")
	os.Exit(2)
}

func main() {
	name := filepath.Base(os.Args[0])
	if name == "kubectl" {
		os.Exit(runKubectl())
	}
	if len(os.Args) < 2 {
		usage()
	}
	sub := os.Args[1]
	// Each upstream command parses os.Args[1:]; drop the subcommand's name.
	os.Args = append([]string{sub}, os.Args[2:]...)
	switch sub {
	case "etcd":
		os.Exit(runEtcd())
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kubectl":
		os.Exit(runKubectl())
	case "pki":
		os.Exit(runPKI())
	case "version":
		fmt.Println(version.Get().GitVersion)
	default:
		usage()
	}
}

// runKubectl is upstream cmd/kubectl/kubectl.go.
func runKubectl() int {
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		kubectlutil.CheckErr(err)
	}
	return 0
}

// runEtcd runs a single-member etcd, embedded, until SIGTERM or SIGINT.
func runEtcd() int {
	fs := flag.NewFlagSet("etcd", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "etcd's data directory (required)")
	clientURL := fs.String("client-url", "http://127.0.0.1:2379", "URL to serve clients on")
	peerURL := fs.String("peer-url", "http://127.0.0.1:2380", "URL to serve peers on (nobody joins)")
	logLevel := fs.String("log-level", "warn", "etcd's log level")
	_ = fs.Parse(os.Args[1:])
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		return 2
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd: --client-url:", err)
		return 2
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd: --peer-url:", err)
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "e2e"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = *logLevel
	// A throw-away test cluster: durability buys nothing, speed does.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd: ready on", cu.String())
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Fprintln(os.Stderr, "etcd: stopping on", s)
		return 0
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
}
