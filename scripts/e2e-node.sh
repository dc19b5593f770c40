# shellcheck shell=bash
# The worker node of the e2e cluster, for E2E_OPERATOR_AS=pod: sourced by
# scripts/e2e-cluster.sh (it uses that script's start/stop/alive/log/die/wait_for
# and its variables dir, logs, state, kubectl, apiserver_port), not run alone.
#
#   node_up     containerd (own root, state and socket under DIR/node), a CNI bridge,
#               the sandbox image, kubelet (node "e2e-node") and kube-scheduler, and
#               kwok with its fake GPU nodes (e2e-gpu-1, e2e-gpu-2) beside the real one
#   node_down   undoes every change to the host, in reverse
#
# What it changes on the host, all undone by node_down (docs/testing-e2e.md):
#   - a bridge fe2e<id> with the pods' /24 and route_localnet=1 on it (pods reach
#     the API server, which listens on 127.0.0.1, at the kubernetes Service's
#     10.0.0.1:443 through one nat PREROUTING DNAT rule from that bridge);
#   - cgroups /finops-e2e-<id> in each hierarchy (the kubelet's cgroupRoot);
#   - sysctls the kubelet sets (kernel.panic, kernel.panic_on_oops,
#     vm.overcommit_memory, vm.panic_on_oom, kernel.keys.root_max*) and the bridge
#     plugin's net.ipv4.ip_forward: saved by the first node on the machine
#     (/run/finops-e2e/sysctl.saved), restored when the last one goes;
#   - /var/log/containers/* links and /var/lib/cni/results/* of its network.
# Everything else (containerd's root and state, the network namespaces, pod logs,
# the kubelet's root) lives under DIR/node and goes with it, unmounted first.
# <id> comes from DIR, so clusters in different folders do not meet.

NODE_NAME=e2e-node
# The fake GPU nodes kwok keeps Ready and whose pods it runs (no kubelet, no
# containers): the real kube-scheduler places GPU pods there, so the real node
# only runs the operator. The taint keeps every other pod off them (the tests'
# GPU pods tolerate it); kwok manages the nodes with the label, as for test_dra.py.
KWOK_LABEL=e2e.finops.resilio.tech/kwok
KWOK_NODES="e2e-gpu-1 e2e-gpu-2"
KWOK_GPU_PRODUCT=NVIDIA-H100-80GB-HBM3
KWOK_GPUS=4
CNI_BIN=/usr/lib/cni
MACHINE_STATE=/run/finops-e2e

node_ids() {
  node_dir=$dir/node
  node_id=$(printf '%s' "$dir" | sha256sum | cut -c1-6)
  bridge=fe2e$node_id
  cgroup_name=finops-e2e-$node_id
  cni_network=finops-e2e-$node_id
  containerd_sock=$node_dir/containerd/containerd.sock
  # The pods' subnet: 10.128.0.0/9, a /24 chosen by the id (checked against the
  # routes of the machine at node_up).
  local a=$((16#${node_id:0:2})) b=$((16#${node_id:2:2}))
  pod_subnet_prefix=10.$((128 + a % 120)).$b
}

# The packages the node needs, installed when missing (as root, Debian).
node_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x "$CNI_BIN/bridge" ] && [ -x "$CNI_BIN/host-local" ] && [ -x "$CNI_BIN/loopback" ] ||
    missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || missing+=(iproute2)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "E2E_OPERATOR_AS=pod needs root and these packages: ${missing[*]}"
  log "installing ${missing[*]} (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >"$logs/apt.log" 2>&1 ||
    die "apt-get install ${missing[*]} failed: $(tail -5 "$logs/apt.log")"
}

cgroup_v2() { [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; }

# The cgroup folders of the kubelet's cgroupRoot: one per v1 hierarchy, or one in v2.
cgroup_dirs() {
  if cgroup_v2; then
    echo "/sys/fs/cgroup/$cgroup_name"
  else
    local m
    for m in /sys/fs/cgroup/*/; do
      mountpoint -q "$m" && echo "${m%/}/$cgroup_name"
    done
  fi
}

# A client certificate signed by the cluster CA: node_cert NAME CN [O]
node_cert() {
  local name=$1 cn=$2 org=${3:-}
  local subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org$subj"
  [ -f "$node_dir/pki/$name.crt" ] && return 0
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$node_dir/pki/$name.key" -subj "$subj" -out "$node_dir/pki/$name.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >"$node_dir/pki/$name.ext"
  openssl x509 -req -in "$node_dir/pki/$name.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" \
    -CAcreateserial -days 30 -extfile "$node_dir/pki/$name.ext" -out "$node_dir/pki/$name.crt" 2>/dev/null
  chmod 600 "$node_dir/pki/$name.key"
}

cert_kubeconfig() { # cert_kubeconfig FILE NAME (the certificate node_cert made)
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
      client-certificate-data: $(base64 -w0 <"$node_dir/pki/$2.crt")
      client-key-data: $(base64 -w0 <"$node_dir/pki/$2.key")
contexts:
  - name: $2@e2e
    context:
      cluster: e2e
      user: $2
current-context: $2@e2e
EOF
  chmod 600 "$1"
}

# The iptables chains a kubelet makes (table/chain), for iptables and ip6tables
# (KUBE-FIREWALL only for IPv4), with INPUT and OUTPUT jumping to KUBE-FIREWALL.
KUBELET_CHAINS="mangle/KUBE-IPTABLES-HINT mangle/KUBE-KUBELET-CANARY nat/KUBE-KUBELET-CANARY filter/KUBE-KUBELET-CANARY filter/KUBE-FIREWALL"

kubelet_chains() { # the kubelet's chains that exist now, one "iptables table/chain" a line
  local tool entry
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for entry in $KUBELET_CHAINS; do
      "$tool" -w 5 -t "${entry%/*}" -S "${entry#*/}" >/dev/null 2>&1 && echo "$tool $entry"
    done
  done
  return 0
}

# Removes the kubelet's chains that were not there before the first node came up
# (MACHINE_STATE/iptables.before), with the jumps to them: only when no other node runs.
remove_kubelet_chains() {
  local tool entry table chain rule
  kubelet_chains | while read -r tool entry; do
    grep -qxF "$tool $entry" "$MACHINE_STATE/iptables.before" 2>/dev/null && continue
    table=${entry%/*} chain=${entry#*/}
    { "$tool" -w 5 -t "$table" -S | grep -E -- "^-A [A-Z]+ -j $chain\$" || true; } | while read -r rule; do
      # shellcheck disable=SC2086 # the rule is words
      "$tool" -w 5 -t "$table" -D ${rule#-A } || true
    done
    "$tool" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
    "$tool" -w 5 -t "$table" -X "$chain" 2>/dev/null || log "could not remove the kubelet's $tool chain $entry"
  done
}

SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward"

# The first node on the machine keeps the sysctls as they were; node_down of the
# last one puts them back.
save_sysctls() {
  mkdir -p "$MACHINE_STATE/nodes"
  if [ ! -f "$MACHINE_STATE/sysctl.saved" ]; then
    local s
    for s in $SYSCTLS; do echo "$s=$(sysctl -n "$s")"; done >"$MACHINE_STATE/sysctl.saved.tmp"
    mv "$MACHINE_STATE/sysctl.saved.tmp" "$MACHINE_STATE/sysctl.saved"
    kubelet_chains >"$MACHINE_STATE/iptables.before"
  fi
  echo "$dir" >"$MACHINE_STATE/nodes/$node_id"
}

restore_sysctls() {
  rm -f "$MACHINE_STATE/nodes/$node_id"
  local other
  for other in "$MACHINE_STATE"/nodes/*; do
    [ -e "$other" ] || continue
    # Another node still runs (its kubelet is alive): it restores them.
    if [ -f "$(cat "$other")/state/kubelet.pid" ] &&
      kill -0 "$(cat "$(cat "$other")/state/kubelet.pid")" 2>/dev/null; then
      log "another e2e node runs ($(cat "$other")): it restores the sysctls"
      return 0
    fi
    rm -f "$other"
  done
  if [ -f "$MACHINE_STATE/sysctl.saved" ]; then
    local line
    while IFS= read -r line; do
      sysctl -q -w "$line" >/dev/null || log "could not restore $line"
    done <"$MACHINE_STATE/sysctl.saved"
    log "restored the sysctls: $(tr '\n' ' ' <"$MACHINE_STATE/sysctl.saved")"
    rm -f "$MACHINE_STATE/sysctl.saved"
  fi
  remove_kubelet_chains
  rm -f "$MACHINE_STATE/iptables.before"
  rmdir "$MACHINE_STATE/nodes" "$MACHINE_STATE" 2>/dev/null || true
}

nat_rule() { # the DNAT rule's spec after -t nat -A/-C/-D
  echo "PREROUTING -i $bridge -d 10.0.0.1/32 -p tcp --dport 443 -m comment --comment finops-e2e-$node_id -j DNAT --to-destination 127.0.0.1:$apiserver_port"
}

node_network_up() {
  if ip -4 route | grep -q "^$pod_subnet_prefix\."; then
    die "the pods' subnet $pod_subnet_prefix.0/24 is already routed on this machine: $(ip -4 route | grep "^$pod_subnet_prefix\.")"
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$pod_subnet_prefix.1/24" dev "$bridge"
    ip link set "$bridge" up
  fi
  sysctl -q -w "net.ipv4.conf.$bridge.route_localnet=1"
  # shellcheck disable=SC2046 # the rule is words
  iptables -t nat -C $(nat_rule) 2>/dev/null || iptables -t nat -A $(nat_rule)
  mkdir -p "$node_dir/cni/net.d"
  cat >"$node_dir/cni/net.d/10-finops-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$cni_network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_subnet_prefix.0/24", "gateway": "$pod_subnet_prefix.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$node_dir/cni/ipam"
      }
    }
  ]
}
EOF
}

node_containerd_up() {
  mkdir -p "$node_dir/containerd"
  cat >"$node_dir/containerd.toml" <<EOF
# containerd for the e2e node: its own root, state and sockets (scripts/e2e-node.sh).
version = 2
root = "$node_dir/containerd/root"
state = "$node_dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$containerd_sock"
[ttrpc]
  address = "$containerd_sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$node_dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(cat "$node_bin/pause-image.name")"
  # Without it every sandbox fails here: "can't get final child's PID from pipe"
  # (runc may not lower oom_score_adj below containerd's own).
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Network namespaces under the state folder, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$node_dir/cni/net.d"
EOF
  if ! alive containerd >/dev/null; then
    start containerd containerd --config "$node_dir/containerd.toml"
  fi
  wait_for 60 containerd ctr --address "$containerd_sock" version
  ctr --address "$containerd_sock" -n k8s.io images import "$node_bin/pause-image.tar" >>"$logs/containerd-import.log" 2>&1 ||
    die "ctr images import of the sandbox image failed: $(tail -5 "$logs/containerd-import.log")"
}

# Loads an image from podman's storage into the node's containerd (podman save,
# then ctr import), unless containerd has it already.
node_load_image() {
  local image=$1
  # The list is read whole before grep: `ctr ... | grep -q` under pipefail fails when
  # grep stops at its match and ctr then dies of SIGPIPE.
  local listed
  listed=$(ctr --address "$containerd_sock" -n k8s.io images ls -q)
  if grep -qxF "$image" <<<"$listed"; then
    return 0
  fi
  local tar=$node_dir/image.tar
  podman save --format docker-archive -o "$tar" "$image" >>"$logs/containerd-import.log" 2>&1 ||
    die "podman save $image failed: $(tail -5 "$logs/containerd-import.log")"
  ctr --address "$containerd_sock" -n k8s.io images import "$tar" >>"$logs/containerd-import.log" 2>&1 ||
    die "ctr images import $image failed: $(tail -5 "$logs/containerd-import.log")"
  rm -f "$tar"
  listed=$(ctr --address "$containerd_sock" -n k8s.io images ls -q)
  grep -qxF "$image" <<<"$listed" ||
    die "containerd does not list $image after the import: $(tr '\n' ' ' <<<"$listed")"
}

node_cgroups_up() {
  local d parent
  for d in $(cgroup_dirs); do
    mkdir -p "$d"
    parent=$(dirname "$d")
    # A new v1 cpuset cgroup has no CPUs or memory nodes until it is given its
    # parent's (v2 inherits them; its root has no cpuset.cpus to copy).
    if ! cgroup_v2 && [ -f "$d/cpuset.cpus" ] && [ -z "$(cat "$d/cpuset.cpus")" ]; then
      cat "$parent/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$parent/cpuset.mems" >"$d/cpuset.mems"
    fi
    if cgroup_v2; then
      # The controllers the kubelet wants below its root (those the machine's root
      # cgroup hands down; the others are left out). Untested here: this machine has v1.
      local c
      for c in $(cat "$d/cgroup.controllers"); do
        echo "+$c" >"$d/cgroup.subtree_control" 2>/dev/null || true
      done
    fi
  done
}

node_kubelet_up() {
  local kubelet_port healthz_port
  kubelet_port=$(free_port)
  healthz_port=$(free_port)
  mkdir -p "$node_dir/kubelet" "$node_dir/pod-logs"
  cert_kubeconfig "$node_dir/kubelet.kubeconfig" kubelet
  cat >"$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 (or v2); 1.35 refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_name
containerRuntimeEndpoint: unix://$containerd_sock
# The node's address is the bridge's own (the kubelet refuses a loopback node IP):
# the API server reaches the kubelet there, the pods' probes come from there.
address: $pod_subnet_prefix.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
podLogsDir: $node_dir/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: AlwaysAllow
failSwapOn: false
# A shared test machine: no evictions and no image garbage collection for its disk.
evictionHard: {memory.available: 1Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 30
# No iptables chains: the kubelet makes KUBE-IPTABLES-HINT, KUBE-FIREWALL and the
# KUBE-KUBELET-CANARY chains for kube-proxy and other node agents, none of which
# runs here (node_down still removes any that a kubelet made).
makeIPTablesUtilChains: false
EOF
  start kubelet "$node_bin/node" kubelet --config "$node_dir/kubelet.yaml" \
    --kubeconfig "$node_dir/kubelet.kubeconfig" --root-dir "$node_dir/kubelet" \
    --cert-dir "$node_dir/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$pod_subnet_prefix.1"
  local k=("$kubectl" --kubeconfig "$dir/kubeconfig")
  wait_for 120 "the node $NODE_NAME to register" "${k[@]}" get node "$NODE_NAME"
  wait_for 120 "the node $NODE_NAME to be Ready" "${k[@]}" wait --for condition=Ready --timeout 1s node "$NODE_NAME"
  # The kubelet registers with the not-ready taint; only the node lifecycle
  # controller, which is off here (it would evict the tests' fake nodes' pods),
  # takes it away once the node is Ready.
  if "${k[@]}" taint node "$NODE_NAME" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1; then
    log "removed the node's registration taint node.kubernetes.io/not-ready:NoSchedule"
  fi
}

node_scheduler_up() {
  cert_kubeconfig "$node_dir/kube-scheduler.kubeconfig" kube-scheduler
  start kube-scheduler "$node_bin/node" kube-scheduler \
    --kubeconfig "$node_dir/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$node_dir/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$node_dir/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false --profiling=false
}

# kwok (scripts/build-kwok.sh) against the API server, out of cluster, and its fake
# GPU nodes with what GPU feature discovery and the device plugin would publish
# (the product label, nvidia.com/gpu capacity). Their pods get addresses of
# TEST-NET-1 (192.0.2.0/24, routed nowhere): nothing runs behind them.
node_kwok_up() {
  local kwok_bin stage name stages=()
  kwok_bin=$("$repo/scripts/build-kwok.sh")
  for stage in "$kwok_bin"/stages/*.yaml; do stages+=(--config "$stage"); done
  if ! alive kwok >/dev/null; then
    mkdir -p "$node_dir/kwok-home"
    (
      # kwok reads ~/.kwok: a home of its own, not root's.
      export HOME=$node_dir/kwok-home
      start kwok "$kwok_bin/kwok" --kubeconfig "$dir/kubeconfig" \
        --manage-nodes-with-label-selector "$KWOK_LABEL=true" "${stages[@]}" \
        --node-lease-duration-seconds 40 --node-ip 127.0.0.1 --node-port "$(free_port)" \
        --server-address "127.0.0.1:$(free_port)" --cidr 192.0.2.0/24
    )
  fi
  local k=("$kubectl" --kubeconfig "$dir/kubeconfig")
  for name in $KWOK_NODES; do
    "${k[@]}" apply -f - >>"$logs/install.log" <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake}
  labels:
    $KWOK_LABEL: "true"
    kubernetes.io/hostname: $name
    type: kwok
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $KWOK_GPU_PRODUCT
    nvidia.com/gpu.count: "$KWOK_GPUS"
spec:
  taints: [{key: $KWOK_LABEL, value: "true", effect: NoSchedule}]
status:
  capacity: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$KWOK_GPUS"}
  allocatable: {cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$KWOK_GPUS"}
EOF
  done
  for name in $KWOK_NODES; do
    wait_for 60 "kwok to report $name Ready" "${k[@]}" wait --for condition=Ready --timeout 1s node "$name"
    # Registered with the not-ready taint, which no controller here removes.
    "${k[@]}" taint node "$name" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
  done
  log "kwok runs the fake GPU nodes $KWOK_NODES ($KWOK_GPUS x $KWOK_GPU_PRODUCT each, tainted $KWOK_LABEL)"
}

# Host folders the kubelet and the CNI plugins create whatever they are told (the
# kubelet's device-plugin socket folder is fixed): those missing before `up` are
# removed by `down` when they are empty again.
HOST_DIRS="/var/lib/kubelet /var/lib/kubelet/device-plugins /var/lib/cni /var/lib/cni/results /var/log/containers"

node_up() {
  node_ids
  [ "$(id -u)" -eq 0 ] || die "E2E_OPERATOR_AS=pod runs a kubelet and containerd: it needs root"
  node_packages
  node_bin=$("$repo/scripts/build-node.sh")
  echo "$node_bin" >"$state/node-bin"
  mkdir -p "$node_dir/pki"
  node_cert kubelet "system:node:$NODE_NAME" system:nodes
  node_cert kube-scheduler system:kube-scheduler
  save_sysctls
  if [ ! -f "$state/node-host-dirs" ]; then
    local d
    for d in $HOST_DIRS; do [ -e "$d" ] || echo "$d"; done >"$state/node-host-dirs"
  fi
  node_network_up
  node_cgroups_up
  node_containerd_up
  node_scheduler_up
  node_kubelet_up
  node_kwok_up
  log "node $NODE_NAME up: containerd $containerd_sock, bridge $bridge ($pod_subnet_prefix.0/24), cgroups /$cgroup_name"
}

# Every pod of the node stopped through the kubelet (so the CNI plugin and the
# volume manager undo what they did), then the processes, then the host changes.
node_down() {
  node_ids
  [ -d "$node_dir" ] || return 0
  local k=("$kubectl" --kubeconfig "$dir/kubeconfig")
  stop kube-scheduler
  stop kwok
  if alive kubelet >/dev/null && "${k[@]}" get --raw /readyz >/dev/null 2>&1; then
    # Nothing may make new pods meanwhile: the controllers go first.
    stop kube-controller-manager
    "${k[@]}" delete pods -A --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period 5 --wait=true --timeout 90s >>"$logs/node-down.log" 2>&1 ||
      log "not every pod of the node stopped through the kubelet (see $logs/node-down.log)"
  fi
  stop kubelet
  if alive containerd >/dev/null; then
    # Whatever still runs (the kubelet did not get to it): stopped and removed,
    # with each sandbox's network torn down by the CRI plugin first.
    local ctr=(ctr --address "$containerd_sock" -n k8s.io) task
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s KILL "$task" >/dev/null 2>&1 || true
    done
    sleep 1
    for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  # Shims outlive containerd by design: ours name our socket.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $containerd_sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Processes still in our cgroups (containers whose shim is gone).
  local d
  for d in $(cgroup_dirs); do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  # Mounts under the node's folder (rootfs overlays, shm, volumes, netns), deepest first.
  local mnt
  for _ in 1 2 3; do
    awk -v p="$node_dir/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r |
      while read -r mnt; do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
  done
  if awk -v p="$node_dir/" 'index($5, p) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "mounts remain under $node_dir; leaving it: $(awk -v p="$node_dir/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | tr '\n' ' ')"
  else
    rm -rf "$node_dir/containerd" "$node_dir/kubelet" "$node_dir/pod-logs" "$node_dir/cni/ipam"
  fi
  # Cgroups, deepest first (empty now).
  for d in $(cgroup_dirs); do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$d" ] && log "cgroup $d is not empty; left"
  done
  # The network.
  # shellcheck disable=SC2046
  if [ -f "$state/ports.env" ]; then
    while iptables -t nat -C $(nat_rule) 2>/dev/null; do iptables -t nat -D $(nat_rule); done
  fi
  ip link del "$bridge" 2>/dev/null || true
  rm -f /var/lib/cni/results/"$cni_network"-* 2>/dev/null || true
  # The kubelet's links to the pods' logs (made whatever podLogsDir says).
  local link
  for link in /var/log/containers/*.log; do
    [ -L "$link" ] || continue
    case $(readlink "$link") in "$node_dir"/*) rm -f "$link" ;; esac
  done
  if [ -f "$state/node-host-dirs" ]; then
    # The kubelet's own files in the device-plugin folder it made.
    if grep -qx /var/lib/kubelet/device-plugins "$state/node-host-dirs"; then
      rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
    fi
    sort -r "$state/node-host-dirs" | while read -r d; do rmdir "$d" 2>/dev/null || true; done
    rm -f "$state/node-host-dirs"
  fi
  restore_sysctls
  log "node $NODE_NAME down: host changes undone"
}
