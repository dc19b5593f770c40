// Command pause is the sandbox process of every pod on the e2e node (containerd's
// sandbox_image). The upstream registry.k8s.io/pause image cannot be pulled where
// no registry is reachable; this does the same: it holds the pod's namespaces,
// reaps orphaned children, and exits on SIGTERM or SIGINT. Built static
// (CGO_ENABLED=0), it is the image's only file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
