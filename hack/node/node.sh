#!/usr/bin/env bash
# The real single-node cluster of `make test-node` (docs/node.md): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, the kubelet and kube-proxy, all built from
# pinned Go modules (hack/controlplane.sh, hack/node/build.sh), runc and the CNI plugins from the
# distribution's packages, images imported into containerd and never pulled.
#
#   hack/node/node.sh up     stop what a previous run left (also after a crash), then start the
#                            cluster; prints the kubeconfig and waits for the Node to be Ready
#   hack/node/node.sh down   stop every process it started (by recorded PID, container shims
#                            included) and undo what it changed on the host
#   hack/node/node.sh env    print the variables the node suite reads (MAUTIC_NODE_*)
#   hack/node/node.sh import IMAGE.tar...   import image tarballs into the node's containerd
#
# Everything stays on this machine: the node address NODE_IP (added to lo) is where the API
# server, etcd and the kubelet listen and what pods reach the API server by; pods get addresses of
# POD_CIDR on the bridge BRIDGE, Services ClusterIPs of SERVICE_CIDR that kube-proxy's iptables
# rules translate; the Service range is routed to the bridge and pods' forwarded traffic may only
# go to the bridge, so nothing reaches the default route. Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${MAUTIC_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mautic-operator}

NODE_IP=${NODE_IP:-10.250.0.1}
NODE_NAME=${NODE_NAME:-mautic-node}
POD_CIDR=${POD_CIDR:-10.244.0.0/24}
POD_GATEWAY=${POD_GATEWAY:-10.244.0.1}
SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/24}
KUBERNETES_SERVICE_IP=${KUBERNETES_SERVICE_IP:-10.96.0.1}
BRIDGE=${BRIDGE:-mautic-cni0}
# Pod traffic may only leave by the bridge (a chain in FORWARD); see up for the Service route.
EGRESS_CHAIN=MAUTIC-NODE-EGRESS
CNI_NETWORK=mautic-node
STATE=${NODE_STATE_DIR:-/var/lib/mautic-node}
RUN=${NODE_RUN_DIR:-/run/mautic-node}
LOGS=${NODE_LOG_DIR:-$cache/node/logs}
PAUSE_IMAGE=mautic-node.local/pause:1
APISERVER_PORT=6443
ETCD_CLIENT_PORT=2379
ETCD_PEER_PORT=2380

# The sysctls the kubelet, kube-proxy and the bridge plugin set; up saves them, down restores them.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)
# Stopped in this order by down: the node agents first, so that nothing restarts containers.
COMPONENTS=(kube-proxy kubelet kube-scheduler kube-controller-manager containerd kube-apiserver etcd)

log() { echo "node: $*" >&2; }
die() { log "$*"; exit 1; }

kubeconfig="$STATE/pki/admin.kubeconfig"
containerd_sock="$RUN/containerd/containerd.sock"

# ---------------------------------------------------------------------------------------------
# Binaries and packages

binaries() {
  [ "$(id -u)" = 0 ] || die "the node test bed needs root (it runs the kubelet and containerd)"
  local missing=()
  for cmd in runc iptables conntrack; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing runc, the CNI plugins, iptables and conntrack from the distribution (missing: ${missing[*]})"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc containernetworking-plugins iptables conntrack >&2
  fi
  command -v openssl >/dev/null || die "openssl is needed to make the cluster's certificates"
  controlplane_bin=$("$root/hack/controlplane.sh")
  node_bin=$("$root/hack/node/build.sh")
  RUNC=$(command -v runc)
}

# ---------------------------------------------------------------------------------------------
# Certificates and kubeconfigs

# cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subject=$2 san=${3:-}
  local dir="$STATE/pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  local ext="$dir/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi
  } > "$ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig_for() {
  local name=$1 dir="$STATE/pki"
  cat > "$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $NODE_NAME
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority: $dir/ca.crt
users:
- name: $name
  user:
    client-certificate: $dir/$name.crt
    client-key: $dir/$name.key
contexts:
- name: $NODE_NAME
  context: {cluster: $NODE_NAME, user: $name}
current-context: $NODE_NAME
EOF
}

pki() {
  local dir="$STATE/pki"
  mkdir -p "$dir"
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=mautic-node-ca" -days 30 -sha256 -out "$dir/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert kubelet-server "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
  cert admin "/O=system:masters/CN=mautic-node-admin"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert kube-controller-manager "/CN=system:kube-controller-manager"
  cert kube-scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  for n in admin kube-controller-manager kube-scheduler kube-proxy kubelet; do kubeconfig_for "$n"; done
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/sa.key" 2>/dev/null
  openssl ec -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Configuration files

configs() {
  mkdir -p "$STATE/config" "$STATE/cni/net.d" "$STATE/cni/ipam"
  cat > "$STATE/config/containerd.toml" <<EOF
version = 3
root = "$STATE/containerd"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$containerd_sock"

[plugins.'io.containerd.internal.v1.opt']
  path = "$STATE/containerd-opt"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"

[plugins.'io.containerd.cri.v1.runtime']
  # Without CAP_SYS_RESOURCE, runc cannot give the sandbox the negative oom_score_adj the
  # kubelet asks for and no pod starts: clamp it to containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$STATE/cni/net.d"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
EOF

  cat > "$STATE/cni/net.d/10-mautic-node.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF

  cat > "$STATE/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: $STATE/pki/kubelet-server.crt
tlsPrivateKeyFile: $STATE/pki/kubelet-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$containerd_sock
# cgroup v1 with cgroupfs, as on our build machines; no swap accounting.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Secret volumes are refreshed about this often (the default is 1m): the node suite measures it.
syncFrequency: ${KUBELET_SYNC_FREQUENCY:-5s}
podCIDR: $POD_CIDR
clusterDomain: cluster.local
maxPods: 40
serializeImagePulls: false
# A test machine's disk may be fuller than a production node's: never evict for it.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF

  cat > "$STATE/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE/pki/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: $NODE_IP:10249
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
# 0: leave the kernel's conntrack limits alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# ---------------------------------------------------------------------------------------------
# Processes

# start NAME CMD...: start a component in its own session, its output in LOGS/NAME.log, its PID in
# RUN/pids/NAME.pid.
start() {
  local name=$1; shift
  mkdir -p "$RUN/pids" "$LOGS"
  (
    # Close every inherited descriptor above stderr: a component must not keep, for as long as it
    # runs, a lock its caller holds (such as `flock LOCK hack/node/node.sh up`).
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done 2>/dev/null
    exec setsid "$@" > "$LOGS/$name.log" 2>&1 < /dev/null
  ) &
  echo $! > "$RUN/pids/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${seconds}s waiting for $what; last lines of the logs in $LOGS:"
      for f in "$LOGS"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
      return 1
    fi
    sleep 0.5
  done
}

kubectl_admin() { "${KUBECTL:-kubectl}" --kubeconfig "$kubeconfig" "$@"; }
ctr_node() { "$node_bin/ctr" --address "$containerd_sock" -n k8s.io "$@"; }

# images: build the sandbox (pause) image with the image tool and import it.
pause_image() {
  local out="$STATE/images"
  mkdir -p "$out"
  (cd "$root" && make -s image-tool >&2 &&
    bin/image-tool --package ./hack/node/pause --name "$PAUSE_IMAGE" --platforms "linux/$(go env GOARCH)" \
      --tarball "$out/pause.tar" >/dev/null)
  ctr_node images import "$out/pause.tar" >/dev/null
}

up() {
  binaries
  down
  log "starting (node address $NODE_IP, pods $POD_CIDR on $BRIDGE, Services $SERVICE_CIDR; logs in $LOGS)"
  rm -rf "$LOGS" && mkdir -p "$STATE" "$RUN" "$LOGS"
  for s in "${SYSCTLS[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && printf '%s\t%s\n' "$s" "$v"
  done > "$STATE/sysctls.saved"
  # The kubelet writes container logs under /var/log/pods and /var/log/containers whatever its
  # root directory; down removes them if they were not there before.
  # The kubelet's device plugin socket lands in /var/lib/kubelet whatever its root directory.
  for d in /var/log/pods /var/log/containers /var/lib/kubelet; do [ -e "$d" ] || echo "$d"; done > "$STATE/created-dirs"
  # iptables (nf_tables backend) creates its tables on first use; down deletes the ones it made.
  if command -v nft >/dev/null; then nft list tables > "$STATE/nft-tables.before"; fi
  ip addr add "$NODE_IP/32" dev lo
  # The Service range is routed to the bridge, made here before the bridge plugin finds and uses
  # it: a ClusterIP that kube-proxy has no rule for yet goes nowhere (no neighbour answers on the
  # bridge) instead of out of the default route. (These kernels have no dummy links.)
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  ip route add "$SERVICE_CIDR" dev "$BRIDGE"
  iptables -N "$EGRESS_CHAIN"
  iptables -A "$EGRESS_CHAIN" -s "$POD_CIDR" ! -o "$BRIDGE" -j REJECT
  iptables -I FORWARD 1 -j "$EGRESS_CHAIN"
  pki
  configs

  start etcd "$controlplane_bin/etcd" --name "$NODE_NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls "http://$NODE_IP:$ETCD_CLIENT_PORT" --advertise-client-urls "http://$NODE_IP:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://$NODE_IP:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$NODE_IP:$ETCD_PEER_PORT" \
    --initial-cluster "$NODE_NAME=http://$NODE_IP:$ETCD_PEER_PORT" --unsafe-no-fsync
  start kube-apiserver "$controlplane_bin/kube-apiserver" \
    --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
    --etcd-servers "http://$NODE_IP:$ETCD_CLIENT_PORT" --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$STATE/pki/ca.crt" --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
    --kubelet-client-certificate "$STATE/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$STATE/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$STATE/pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$STATE/pki/sa.pub" --service-account-signing-key-file "$STATE/pki/sa.key" \
    --authorization-mode Node,RBAC --allow-privileged=true --profiling=false
  wait_for "the API server" 120 kubectl_admin get --raw /readyz

  start containerd env PATH="$node_bin:$PATH" "$node_bin/containerd" --config "$STATE/config/containerd.toml"
  wait_for "containerd" 60 "$node_bin/ctr" --address "$containerd_sock" version
  pause_image

  start kube-controller-manager "$node_bin/kube-controller-manager" \
    --kubeconfig "$STATE/pki/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/pki/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/pki/kube-controller-manager.kubeconfig" \
    --bind-address "$NODE_IP" --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$STATE/pki/sa.key" --root-ca-file "$STATE/pki/ca.crt" \
    --cluster-signing-cert-file "$STATE/pki/ca.crt" --cluster-signing-key-file "$STATE/pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
  start kube-scheduler "$node_bin/kube-scheduler" \
    --kubeconfig "$STATE/pki/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/pki/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/pki/kube-scheduler.kubeconfig" \
    --bind-address "$NODE_IP" --leader-elect=false --profiling=false
  start kubelet "$node_bin/kubelet" --config "$STATE/config/kubelet.yaml" \
    --kubeconfig "$STATE/pki/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  start kube-proxy "$node_bin/kube-proxy" --config "$STATE/config/kube-proxy.yaml"

  wait_for "Node $NODE_NAME to be Ready" 120 kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
  # Pods may run as soon as the default ServiceAccount exists.
  wait_for "the default ServiceAccount" 60 kubectl_admin get serviceaccount default -n default
  env_vars > "$STATE/env"
  log "Node $NODE_NAME is Ready; kubeconfig: $kubeconfig"
  echo "$kubeconfig"
}

# env_vars: what the node suite (test/node) reads; it runs only when they are set.
env_vars() {
  echo "MAUTIC_NODE_KUBECONFIG=$kubeconfig"
  echo "MAUTIC_NODE_NAME=$NODE_NAME"
  echo "MAUTIC_NODE_IP=$NODE_IP"
  echo "MAUTIC_NODE_CTR=$node_bin/ctr"
  echo "MAUTIC_NODE_CONTAINERD_ADDRESS=$containerd_sock"
}

# ---------------------------------------------------------------------------------------------
# Stopping and cleaning up

# stop_pid PID: TERM, then KILL after 10 seconds.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

# stop_component NAME: stop the process recorded in RUN/pids/NAME.pid if it is still that process.
stop_component() {
  local name=$1 file="$RUN/pids/$1.pid" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$name"; then
    stop_pid "$pid"
  fi
  rm -f "$file"
}

# stop_containers: kill every container and shim containerd recorded in its state directory
# (init.pid and shim.pid of each task), also when containerd itself is gone.
stop_containers() {
  local tasks="$RUN/containerd/io.containerd.runtime.v2.task" f pid
  [ -d "$tasks" ] || return 0
  for f in "$tasks"/*/*/init.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # Only a process in one of the kubelet's pod cgroups is a container of ours.
    if grep -q kubepods "/proc/$pid/cgroup" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for f in "$tasks"/*/*/shim.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q containerd-shim; then stop_pid "$pid"; fi
  done
}

# remove_chains IPTABLES: delete every rule that jumps to a KUBE- or CNI- chain, then those chains.
remove_chains() {
  local ipt=$1 table chains rule
  command -v "$ipt" >/dev/null || return 0
  for table in filter nat mangle raw; do
    "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
    "$ipt" -t "$table" -S | { grep -E '^-A [A-Z]+ .*-j (KUBE|CNI|MAUTIC-NODE)-' || true; } | while read -r rule; do
      # shellcheck disable=SC2086 # the rule is a list of arguments, as iptables -S prints it.
      eval "$ipt -t $table -D ${rule#-A }" 2>/dev/null || true
    done
    chains=$("$ipt" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|MAUTIC-NODE)-/ {print $2}')
    for c in $chains; do "$ipt" -t "$table" -F "$c" 2>/dev/null || true; done
    for c in $chains; do "$ipt" -t "$table" -X "$c" 2>/dev/null || true; done
  done
}

# remove_cgroups: the kubelet's pod cgroups in every hierarchy, deepest first (only empty ones go).
remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

down() {
  local name m
  for name in "${COMPONENTS[@]}"; do
    [ "$name" = containerd ] && stop_containers
    stop_component "$name"
  done
  stop_containers
  # Mounts under our directories: Secret and token volumes, overlay roots, shm, network namespaces.
  for m in $(awk -v s="$STATE" -v r="$RUN" '$5 ~ "^(" s "|" r ")(/|$)" {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  remove_chains iptables
  remove_chains ip6tables
  ip link delete "$BRIDGE" 2>/dev/null || true
  ip addr delete "$NODE_IP/32" dev lo 2>/dev/null || true
  remove_cgroups
  # libcni's result cache (/var/lib/cni), and the shim sockets and runc state that containerd 2
  # keeps under /run/containerd whatever its state directory.
  rm -rf /var/lib/cni/results/"$CNI_NETWORK"-* /var/lib/cni/networks/"$CNI_NETWORK"
  rmdir /var/lib/cni/results /var/lib/cni/networks /var/lib/cni 2>/dev/null || true
  if ! pgrep -x containerd >/dev/null; then
    rm -rf /run/containerd/s /run/containerd/fifo /run/containerd/runc/k8s.io
    rmdir /run/containerd/runc /run/containerd 2>/dev/null || true
  fi
  if [ -f "$STATE/nft-tables.before" ]; then
    nft list tables | while read -r _ family table; do
      grep -qx "table $family $table" "$STATE/nft-tables.before" || nft delete table "$family" "$table" 2>/dev/null || true
    done
  fi
  if [ -f "$STATE/created-dirs" ]; then
    while read -r d; do rm -rf "$d"; done < "$STATE/created-dirs"
  fi
  if [ -f "$STATE/sysctls.saved" ]; then
    while IFS=$'\t' read -r s v; do sysctl -q -w "$s=$v" >/dev/null 2>&1 || log "could not restore $s=$v"; done < "$STATE/sysctls.saved"
  fi
  rm -rf "$STATE" "$RUN"
}

case "${1:-}" in
  up) up ;;
  down) down; log "stopped; the host is as before" ;;
  env) node_bin=$("$root/hack/node/build.sh"); env_vars ;;
  import)
    shift
    node_bin=$("$root/hack/node/build.sh")
    for f in "$@"; do ctr_node images import "$f" >/dev/null; done ;;
  *) echo "usage: $0 up|down|env|import IMAGE.tar..." >&2; exit 2 ;;
esac
