// Command node is the worker node of finops-operator's end-to-end tests: one
// multi-call binary, built from the k8s.io/kubernetes module pinned in go.mod (the
// same version as e2e/controlplane), that runs
//
//	node kubelet FLAGS...         (the real kubelet)
//	node kube-scheduler FLAGS...  (the real kube-scheduler)
//	node version
//
// It is a module of its own, not part of e2e/controlplane, so that the control
// plane's cached build (and its hash) does not change for the suites that run
// without a node; both builds share Go's module and build caches, so the
// packages they have in common are compiled once. Nothing here changes how the
// upstream commands behave: each subcommand is the upstream main() of that
// command. scripts/e2e-node.sh chooses the flags.
package main

import (
	"context"
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/version"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: node kubelet|kube-scheduler|version [args...]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	sub := os.Args[1]
	// Each upstream command parses os.Args[1:]; drop the subcommand's name.
	os.Args = append([]string{sub}, os.Args[2:]...)
	switch sub {
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "version":
		fmt.Println(version.Get().GitVersion)
	default:
		usage()
	}
}
