#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, with finops-operator installed
# the way a cluster admin installs it, for people and for tests/e2e:
#
#   scripts/e2e-cluster.sh up DIR         build what is missing, start it all, install
#   scripts/e2e-cluster.sh down DIR       stop everything `up` started (by pid)
#   scripts/e2e-cluster.sh operator DIR   start the operator again (if it is not running)
#   scripts/e2e-cluster.sh stop-operator DIR   stop only the operator
#   scripts/e2e-cluster.sh status DIR     what runs where
#   scripts/e2e-cluster.sh stop-apiserver DIR    stop only kube-apiserver (by pid)
#   scripts/e2e-cluster.sh start-apiserver DIR   start it again: same flags, port and etcd
#   scripts/e2e-cluster.sh restart-apiserver DIR [SECONDS]   both: down for SECONDS
#                                         (whole seconds from the signal; default 0)
#
# `up` starts etcd (embedded), kube-apiserver and kube-controller-manager, all on
# 127.0.0.1, built by scripts/build-controlplane.sh from k8s.io/kubernetes. It
# writes DIR/kubeconfig (cluster-admin), installs the Prometheus Operator CRDs
# (from its Go module, by scripts/fetch-upstream-crds.sh, or $E2E_PROM_CRDS)
# and `kubectl apply -k` the project's manifests through tests/e2e/overlay (the
# operator is a local process, not a pod: the webhooks call it on 127.0.0.1). It then asks the TokenRequest API for a
# token of the manifests' own ServiceAccount finops-system/finops-operator, writes
# DIR/operator.kubeconfig with it, and starts `finops-operator run` with the
# ConfigMap's configuration as shipped, --config-map, --invalid-config safe-default
# and --webhook-secret as the Deployment does.
# It returns once the webhooks answer, leaving everything running.
#
# Use it:   export KUBECONFIG=DIR/kubeconfig PATH=<the folder it prints>:$PATH
#           kubectl get costpolicies,costreports -A
#
# E2E_OPERATOR_AS=pod (root only): the operator runs as the manifests' Deployment
# instead, on a real node: `up` adds kube-scheduler, containerd and a kubelet
# (scripts/e2e-node.sh), and kwok with two fake GPU nodes for the GPU pods (tainted:
# nothing else lands there), builds the image (scripts/build-image.sh, or takes
# E2E_OPERATOR_IMAGE from podman's storage), loads it into containerd and installs
# through tests/e2e/overlay-pod: the webhooks call the Service, as shipped. `down`
# undoes every change to the host. See docs/testing-e2e.md, "The operator as a pod".
#
# Environment: FINOPS_OPERATOR (default .venv/bin/finops-operator), E2E_PROM_CRDS,
# E2E_APISERVER_SIGNAL (TERM, the default: a graceful shutdown, SIGKILL after 10s;
# KILL: a crash) for stop-apiserver and restart-apiserver,
# E2E_NO_OPERATOR=1 (control plane and install only, no operator runs; with pod: the
# node has the image, the Deployment 0 replicas, for another install such as the
# Helm chart's to run it), E2E_APISERVER_FLAGS (more
# kube-apiserver flags, e.g. --enable-admission-plugins=...,OwnerReferencesPermissionEnforcement).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  echo "usage: $0 up|down|operator|stop-operator|status|stop-apiserver|start-apiserver DIR" >&2
  echo "       $0 restart-apiserver DIR [SECONDS]" >&2
  exit 2
}
[ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$1" = restart-apiserver ]; } || usage
cmd=$1
outage=${3:-0}
[[ $outage =~ ^[0-9]+$ ]] || usage
mkdir -p "$2"
dir=$(cd "$2" && pwd)
logs=$dir/logs
state=$dir/state
mkdir -p "$logs" "$state"
# process (default): the operator is a local process; pod: the Deployment on a node.
# Kept from `up` for the other commands.
if [ -f "$state/operator-as" ] && [ "$cmd" != up ]; then
  operator_as=$(cat "$state/operator-as")
else
  operator_as=${E2E_OPERATOR_AS:-process}
fi
[[ $operator_as =~ ^(process|pod)$ ]] || { echo "e2e-cluster: E2E_OPERATOR_AS: process or pod, not $operator_as" >&2; exit 2; }
# shellcheck source=scripts/e2e-node.sh
. "$repo/scripts/e2e-node.sh"

log() { echo "e2e-cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A pid file's process, if it still runs and is ours (its command line names DIR).
alive() {
  local pidfile=$state/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir" || return 1
  echo "$pid"
}

stop() { # stop NAME [SIGNAL]: SIGNAL (default TERM), then SIGKILL after 10s
  local name=$1 signal=${2:-TERM} pid
  if pid=$(alive "$name"); then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$state/$name.pid"
}

# start NAME COMMAND...: in the background, output to logs/NAME.log, pid to state/NAME.pid.
start() {
  local name=$1
  shift
  # Appends: a restarted process (the operator after `operator DIR`) keeps the old log.
  nohup "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
}

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "$what: not ready after ${seconds}s (logs in $logs)"
    fi
    sleep 0.5
  done
}

kubeconfig() { # kubeconfig FILE USER TOKEN
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://127.0.0.1:$apiserver_port
      certificate-authority-data: $(base64 -w0 <"$dir/pki/ca.crt")
users:
  - name: $2
    user:
      token: $3
contexts:
  - name: $2@e2e
    context:
      cluster: e2e
      user: $2
current-context: $2@e2e
EOF
  chmod 600 "$1"
}

load_ports() {
  # shellcheck disable=SC1091
  . "$state/ports.env"
}

status() {
  load_ports
  local bin
  bin=$(cat "$state/bin")
  echo "control plane in $dir (the operator as a $operator_as)"
  local names="etcd kube-apiserver kube-controller-manager operator"
  [ "$operator_as" = pod ] && names="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kwok"
  for name in $names; do
    local pid
    if pid=$(alive "$name"); then
      echo "  $name: pid $pid, log $logs/$name.log"
    else
      echo "  $name: not running (log $logs/$name.log)"
    fi
  done
  echo "  etcd             http://127.0.0.1:$etcd_port"
  echo "  kube-apiserver   https://127.0.0.1:$apiserver_port"
  if [ "$operator_as" = pod ]; then
    node_ids
    echo "  node             $NODE_NAME: containerd $containerd_sock, pods on $bridge ($pod_subnet_prefix.0/24)"
    echo "  GPU nodes        $KWOK_NODES (kwok; $KWOK_GPUS nvidia.com/gpu each, pods tolerate $KWOK_LABEL)"
    echo "  operator         Deployment finops-system/finops-operator, webhooks through the Service finops-operator-webhook"
  else
    echo "  operator         webhooks https://127.0.0.1:$webhook_port, /metrics http://127.0.0.1:$metrics_port/metrics"
  fi
  echo "  kubectl:         export KUBECONFIG=$dir/kubeconfig PATH=$bin:\$PATH"
}

# kube-apiserver with the flags, port and etcd of `up` (also for start-apiserver:
# the extra flags of E2E_APISERVER_FLAGS at `up` are kept in state/apiserver-flags).
start_apiserver() {
  load_ports
  local cp extra
  cp=$(cat "$state/bin")/controlplane
  extra=$(cat "$state/apiserver-flags" 2>/dev/null || true)
  # shellcheck disable=SC2086 # the extra flags are words
  start kube-apiserver "$cp" kube-apiserver \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" --token-auth-file "$dir/pki/tokens.csv" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy \
    --feature-gates MutatingAdmissionPolicy=true \
    --runtime-config admissionregistration.k8s.io/v1beta1=true \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --endpoint-reconciler-type none \
    --cert-dir "$dir/pki" \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$logs/audit.log" \
    --profiling=false $extra
}

wait_apiserver() {
  wait_for 120 kube-apiserver "$kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz
}

start_operator() {
  load_ports
  local operator=${FINOPS_OPERATOR:-$repo/.venv/bin/finops-operator}
  [ -x "$operator" ] || die "$operator not found: run scripts/bootstrap.sh (or set FINOPS_OPERATOR)"
  if pid=$(alive operator); then
    log "the operator already runs (pid $pid)"
    return 0
  fi
  # The operator's identity: a token of the manifests' own ServiceAccount, from the
  # TokenRequest API, so every call it makes is judged by manifests/base/rbac.yaml.
  local token
  token=$("$kubectl" --kubeconfig "$dir/kubeconfig" -n finops-system create token finops-operator --duration 24h)
  kubeconfig "$dir/operator.kubeconfig" system:serviceaccount:finops-system:finops-operator "$token"
  # The configuration the Deployment would mount: the ConfigMap as installed.
  "$kubectl" --kubeconfig "$dir/kubeconfig" -n finops-system get configmap finops-operator-config \
    -o 'go-template={{index .data "config.yaml"}}' >"$dir/config.yaml"
  (
    cd "$dir"
    export KUBECONFIG=$dir/operator.kubeconfig POD_NAMESPACE=finops-system
    start operator "$operator" run --config "$dir/config.yaml" \
    --config-map finops-operator-config --invalid-config safe-default \
    --webhook-secret finops-operator-webhook-tls \
    --webhook-host 127.0.0.1 --webhook-port "$webhook_port" --metrics-port "$metrics_port" \
    --webhook-drain-seconds 0.2 --namespace finops-system
  )
  log "operator started (pid $(cat "$state/operator.pid")), waiting for its webhooks"
  wait_webhooks
}

# Returns when a GPU Pod passes the validating webhook (failurePolicy Fail: while
# the operator or its caBundle is missing, the API server refuses it).
wait_webhooks() {
  local deadline=$((SECONDS + 90))
  until "$kubectl" --kubeconfig "$dir/kubeconfig" -n default create --dry-run=server -o name -f - \
    >"$state/probe.out" 2>&1 <<'EOF'; do
apiVersion: v1
kind: Pod
metadata:
  name: e2e-cluster-webhook-probe
spec:
  containers:
    - name: probe
      image: registry.invalid/probe
      resources:
        limits:
          nvidia.com/gpu: 1
EOF
    if [ "$operator_as" = process ]; then
      alive operator >/dev/null || die "the operator exited: $(tail -20 "$logs/operator.log")"
    fi
    if [ $SECONDS -ge $deadline ]; then
      die "the webhooks do not answer after 90s: $(cat "$state/probe.out")"
    fi
    sleep 0.5
  done
}

up() {
  local bin
  bin=$("$repo/scripts/build-controlplane.sh")
  echo "$bin" >"$state/bin"
  kubectl=$bin/kubectl
  local cp=$bin/controlplane
  if alive kube-apiserver >/dev/null; then
    log "already up in $dir"
    load_ports
  else
    etcd_port=$(free_port)
    etcd_peer_port=$(free_port)
    apiserver_port=$(free_port)
    kcm_port=$(free_port)
    webhook_port=$(free_port)
    metrics_port=$(free_port)
    cat >"$state/ports.env" <<EOF
etcd_port=$etcd_port
etcd_peer_port=$etcd_peer_port
apiserver_port=$apiserver_port
kcm_port=$kcm_port
webhook_port=$webhook_port
metrics_port=$metrics_port
EOF
    "$cp" pki --dir "$dir/pki"
    if [ ! -f "$dir/pki/tokens.csv" ]; then
      # Static tokens for the two control-plane clients that are not service
      # accounts: the admin (system:masters) and kube-controller-manager.
      printf '%s,admin,admin,system:masters\n%s,system:kube-controller-manager,kube-controller-manager\n' \
        "$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        "$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/pki/tokens.csv"
      chmod 600 "$dir/pki/tokens.csv"
    fi
    kubeconfig "$dir/kubeconfig" admin "$(sed -n 1p "$dir/pki/tokens.csv" | cut -d, -f1)"
    kubeconfig "$dir/kube-controller-manager.kubeconfig" system:kube-controller-manager \
      "$(sed -n 2p "$dir/pki/tokens.csv" | cut -d, -f1)"

    # The API server's audit log records every request of the operator's
    # ServiceAccount (logs/audit.log): what it used of its RBAC, and any refusal.
    cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["system:serviceaccount:finops-system:finops-operator"]
  - level: None
EOF

    start etcd "$cp" etcd --data-dir "$dir/etcd" \
      --client-url "http://127.0.0.1:$etcd_port" --peer-url "http://127.0.0.1:$etcd_peer_port" \
      --log-level error
    echo "$operator_as" >"$state/operator-as"
    local extra_flags=${E2E_APISERVER_FLAGS:-}
    if [ "$operator_as" = pod ]; then
      # The webhooks' Service leads to its endpoints' pod IPs (no kube-proxy), and
      # the API server reaches the kubelet (logs, exec) with a certificate of its own.
      node_ids
      mkdir -p "$node_dir/pki"
      node_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
      extra_flags="$extra_flags --enable-aggregator-routing=true --kubelet-preferred-address-types InternalIP"
      extra_flags="$extra_flags --kubelet-client-certificate $node_dir/pki/apiserver-kubelet-client.crt"
      extra_flags="$extra_flags --kubelet-client-key $node_dir/pki/apiserver-kubelet-client.key"
    fi
    echo "$extra_flags" >"$state/apiserver-flags"
    start_apiserver
    log "started etcd and kube-apiserver; waiting for the API server"
    wait_apiserver
    # Only now: kube-controller-manager exits when the API server's RBAC is not there yet.
    # No kubelet here: the node lifecycle controllers would mark the tests' fake
    # nodes unreachable and evict their pods; everything else runs as on a cluster.
    start kube-controller-manager "$cp" kube-controller-manager \
      --kubeconfig "$dir/kube-controller-manager.kubeconfig" \
      --authentication-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
      --authorization-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port "$kcm_port" \
      --leader-elect=false \
      --use-service-account-credentials=true \
      --service-account-private-key-file "$dir/pki/sa.key" \
      --root-ca-file "$dir/pki/ca.crt" \
      --cluster-signing-cert-file "$dir/pki/ca.crt" --cluster-signing-key-file "$dir/pki/ca.key" \
      --controllers '*,-node-lifecycle-controller,-taint-eviction-controller' \
      --profiling=false
    wait_for 60 "the default ServiceAccount" "$kubectl" --kubeconfig "$dir/kubeconfig" -n default get serviceaccount default
    if [ "$operator_as" = pod ]; then node_up; fi
  fi
  local k=("$kubectl" --kubeconfig "$dir/kubeconfig")

  # The Prometheus Operator CRDs the manifests use (ServiceMonitor, PrometheusRule).
  local crds=${E2E_PROM_CRDS:-}
  [ -n "$crds" ] || crds=$("$repo/scripts/fetch-upstream-crds.sh")
  [ -f "$crds/monitoring.coreos.com_prometheusrules.yaml" ] || die "no Prometheus Operator CRDs in $crds"
  "${k[@]}" apply --server-side -f "$crds/monitoring.coreos.com_prometheusrules.yaml" \
    -f "$crds/monitoring.coreos.com_servicemonitors.yaml" >"$logs/install.log"
  "${k[@]}" wait --for condition=Established --timeout 60s \
    crd/prometheusrules.monitoring.coreos.com crd/servicemonitors.monitoring.coreos.com >>"$logs/install.log"

  local install=$dir/install
  mkdir -p "$install"
  if [ "$operator_as" = pod ]; then
    # The image, built from the Dockerfile (or E2E_OPERATOR_IMAGE), in the node's containerd.
    local image=${E2E_OPERATOR_IMAGE:-${FINOPS_OPERATOR_IMAGE:-}}
    if [ -z "$image" ]; then
      [ -x "$repo/scripts/build-image.sh" ] || die "scripts/build-image.sh is missing: set E2E_OPERATOR_IMAGE"
      image=$("$repo/scripts/build-image.sh" | tail -1)
    fi
    node_ids
    node_load_image "$image"
    echo "$image" >"$state/operator-image"
    # E2E_NO_OPERATOR=1: the image is on the node, but the Deployment runs no pod.
    local replicas=""
    [ "${E2E_NO_OPERATOR:-}" = 1 ] && replicas=$'replicas:\n  - name: finops-operator\n    count: 0'
    cat >"$install/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to "$install" "$repo/tests/e2e/overlay-pod")
images:
  - name: finops-operator
    newName: ${image%:*}
    newTag: ${image##*:}
$replicas
EOF
  else
    # The project, through the test overlay, with the endpoint's port set.
    cat >"$install/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to "$install" "$repo/tests/e2e/overlay")
patches:
  - target:
      group: admissionregistration.k8s.io
      kind: ValidatingWebhookConfiguration
      name: finops-operator
    patch: |-
      - op: replace
        path: /webhooks/0/clientConfig/url
        value: https://127.0.0.1:$webhook_port/validate
  - target:
      group: admissionregistration.k8s.io
      kind: MutatingWebhookConfiguration
      name: finops-operator
    patch: |-
      - op: replace
        path: /webhooks/0/clientConfig/url
        value: https://127.0.0.1:$webhook_port/mutate
EOF
  fi
  # Two passes: the first creates the CRDs, which the second may need.
  if ! "${k[@]}" apply -k "$install" >>"$logs/install.log" 2>&1; then
    "${k[@]}" wait --for condition=Established --timeout 60s \
      crd/costpolicies.finops.resilio.tech crd/costreports.finops.resilio.tech >>"$logs/install.log"
    "${k[@]}" apply -k "$install" >>"$logs/install.log" 2>&1 || die "kubectl apply -k failed: $(tail -20 "$logs/install.log")"
  fi
  log "installed (kubectl apply -k $install; output in $logs/install.log)"

  if [ "$operator_as" = pod ] && [ "${E2E_NO_OPERATOR:-}" != 1 ]; then
    log "waiting for the Deployment's rollout (both replicas Ready)"
    "${k[@]}" -n finops-system rollout status deployment/finops-operator --timeout 300s >>"$logs/install.log" 2>&1 ||
      die "the Deployment did not roll out: $("${k[@]}" -n finops-system get pods -o wide 2>&1)"
    wait_webhooks
  elif [ "$operator_as" = process ] && [ "${E2E_NO_OPERATOR:-}" != 1 ]; then
    start_operator
  fi
  cat >"$dir/cluster.json" <<EOF
{
  "dir": "$dir",
  "bin": "$bin",
  "kubectl": "$kubectl",
  "kubeconfig": "$dir/kubeconfig",
  "operator_kubeconfig": "$dir/operator.kubeconfig",
  "config": "$dir/config.yaml",
  "apiserver": "https://127.0.0.1:$apiserver_port",
  "etcd_port": $etcd_port,
  "webhook_port": $webhook_port,
  "metrics_port": $metrics_port,
  "logs": "$logs",
  "audit_log": "$logs/audit.log",
  "state": "$state",
  "operator_as": "$operator_as",
  "node": "$([ "$operator_as" = pod ] && echo "$NODE_NAME")",
  "containerd_socket": "$([ "$operator_as" = pod ] && echo "$containerd_sock")",
  "gpu_nodes": [$([ "$operator_as" = pod ] && printf '"%s",' $KWOK_NODES | sed 's/,$//')],
  "gpu_node_taint": "$([ "$operator_as" = pod ] && echo "$KWOK_LABEL")"
}
EOF
  status
}

case $cmd in
  up) up ;;
  down)
    if [ "$operator_as" = pod ] && [ -f "$state/ports.env" ]; then
      load_ports
      kubectl=$(cat "$state/bin")/kubectl
      node_down
    fi
    for name in operator kube-controller-manager kube-apiserver etcd; do
      stop "$name"
    done
    # Processes the tests started next to ours (state/extra-*.pid).
    for f in "$state"/extra-*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid)
      stop "$name"
    done
    ;;
  operator)
    [ "$operator_as" = process ] || die "the operator runs as the Deployment here: kubectl -n finops-system scale deployment finops-operator"
    kubectl=$(cat "$state/bin")/kubectl
    start_operator
    status
    ;;
  stop-operator)
    [ "$operator_as" = process ] || die "the operator runs as the Deployment here: kubectl -n finops-system scale deployment finops-operator"
    stop operator
    ;;
  stop-apiserver | start-apiserver | restart-apiserver)
    [ -f "$state/ports.env" ] || die "no cluster in $dir (run up first)"
    kubectl=$(cat "$state/bin")/kubectl
    signal=${E2E_APISERVER_SIGNAL:-TERM}
    [[ $signal =~ ^(TERM|KILL)$ ]] || die "E2E_APISERVER_SIGNAL: TERM or KILL, not $signal"
    if [ "$cmd" != start-apiserver ]; then
      # The API stops answering at the signal: a graceful shutdown stops listening
      # at once, then drains (the watches keep it alive up to the 10s of `stop`).
      down_at=$SECONDS
      stop kube-apiserver "$signal"
      [ "$cmd" = stop-apiserver ] && exit 0
      left=$((down_at + outage - SECONDS))
      [ $left -le 0 ] || sleep "$left"
    fi
    if pid=$(alive kube-apiserver); then
      log "kube-apiserver already runs (pid $pid)"
    else
      alive etcd >/dev/null || die "etcd does not run: start the cluster with up"
      start_apiserver
      log "kube-apiserver started (pid $(cat "$state/kube-apiserver.pid")), waiting for /readyz"
      wait_apiserver
    fi
    ;;
  status) status ;;
  *) usage ;;
esac
