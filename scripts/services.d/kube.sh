# shellcheck shell=bash
# Kubernetes without kubelets: etcd from Debian; kube-apiserver and kube-controller-manager
# built from Go modules, cached per version. Sourced by scripts/services.

# ---------------------------------------------------------------------------------------------
# etcd
start_etcd() {
  if running_pid etcd >/dev/null; then return; fi
  need_cmd etcd etcd-server
  mkdir -p "$SVC/etcd"
  say "starting etcd on 127.0.0.1:$ETCD_PORT"
  # --unsafe-no-fsync: throwaway test data; fsync would make every write wait on the disk.
  launch etcd "$LOGS/etcd.log" etcd --name default --data-dir "$SVC/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --logger zap --log-outputs stderr
}

etcd_ok() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

wait_etcd() {
  local pid
  pid=$(running_pid etcd) || fail_service etcd "$LOGS/etcd.log" "the etcd process is not running"
  wait_until etcd "$LOGS/etcd.log" "$ETCD_READY_TIMEOUT" "$pid" etcd_ok
}

# ---------------------------------------------------------------------------------------------
# Binaries
ensure_kube_binaries() {
  [[ -f $KUBE_HOME/.complete ]] && return
  command -v go >/dev/null || die "Go is needed to build kube-apiserver $KUBE_VERSION (go 1.21+ on PATH; newer toolchains are fetched through the module proxy)"
  local src=$KUBE_HOME/src minor=${KUBE_VERSION#*.}
  minor=${minor%%.*}
  local staging=v0.${KUBE_VERSION#1.}
  mkdir -p "$src" "$KUBE_HOME/bin"
  say "building kube-apiserver and kube-controller-manager $KUBE_VERSION from Go modules (cold: ~10 min)"
  local log=$KUBE_HOME/build.log
  (
    set -e
    cd "$src"
    # k8s.io/kubernetes requires its staging modules at v0.0.0; pin each to the matching
    # published version so the module graph resolves.
    [[ -f go.mod ]] || go mod init local/kas
    go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk '{print $1}' | while read -r m; do
      go mod edit -replace="$m=$m@$staging"
    done
    cp "$TEMPLATES/kube-tools.go" tools.go
    go mod tidy
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    for cmd in kube-apiserver kube-controller-manager; do
      CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$KUBE_HOME/bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
      mv "$KUBE_HOME/bin/$cmd.tmp" "$KUBE_HOME/bin/$cmd"
    done
  ) >"$log" 2>&1 || fail_service kube-apiserver "$log" "building from Go modules failed"
  touch "$KUBE_HOME/.complete"
}

# ---------------------------------------------------------------------------------------------
# Certificates and tokens are made once per runtime folder: a CA, a serving certificate for
# 127.0.0.1 signed by it (rustls refuses a self-signed leaf), the service-account key pair, and
# static tokens for an admin and for a deliberately limited user.
ensure_kube_pki() {
  local k=$SVC/kube
  [[ -f $k/.pki-complete ]] && return
  need_cmd openssl openssl
  mkdir -p "$k/pki"
  (
    set -e
    cd "$k/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=reflex-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
      -days 3650 -extfile "$TEMPLATES/apiserver-cert.ext"
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$k/pki.log" 2>&1 || fail_service kube-apiserver "$k/pki.log" "creating certificates with openssl failed"
  local admin limited
  admin=$(openssl rand -hex 24)
  limited=$(openssl rand -hex 24)
  {
    echo "$admin,admin,1000,\"system:masters\""
    echo "$limited,reflex-limited,1001,\"reflex:limited\""
  } >"$k/tokens.csv"
  chmod 600 "$k/tokens.csv" "$k/pki/"*.key
  touch "$k/.pki-complete"
}

token_of() { awk -F, -v u="$1" '$2 == u { print $1 }' "$SVC/kube/tokens.csv"; }

# write_kubeconfig FILE USER NAMESPACE
write_kubeconfig() {
  local file=$1
  export KUBE_USER=$2 KUBE_NAMESPACE=$3 KUBE_CA_DATA KUBE_TOKEN
  KUBE_CA_DATA=$(base64 -w0 <"$SVC/kube/pki/ca.crt")
  KUBE_TOKEN=$(token_of "$KUBE_USER")
  render kubeconfig.yaml "$file" KUBE_PORT KUBE_CA_DATA KUBE_USER KUBE_TOKEN KUBE_NAMESPACE
  chmod 600 "$file"
}

# ---------------------------------------------------------------------------------------------
# kube-apiserver
start_kube_apiserver() {
  if running_pid kube-apiserver >/dev/null; then return; fi
  ensure_kube_binaries
  ensure_kube_pki
  local k=$SVC/kube
  write_kubeconfig "$SVC/kubeconfig" admin default
  write_kubeconfig "$SVC/kubeconfig-limited" reflex-limited reflex-limited
  say "starting kube-apiserver $KUBE_VERSION on https://127.0.0.1:$KUBE_PORT"
  # --endpoint-reconciler-type=none: the `kubernetes` Service endpoint may not be a loopback
  # address (1.37 refuses to start), and with no pods nothing needs that endpoint.
  launch kube-apiserver "$LOGS/kube-apiserver.log" "$KUBE_HOME/bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$KUBE_PORT" \
    --cert-dir="$k/certs" --tls-cert-file="$k/pki/apiserver.crt" --tls-private-key-file="$k/pki/apiserver.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer="https://127.0.0.1:$KUBE_PORT" \
    --service-account-key-file="$k/pki/sa.pub" --service-account-signing-key-file="$k/pki/sa.key" \
    --authorization-mode=RBAC --token-auth-file="$k/tokens.csv" \
    --disable-admission-plugins=ServiceAccount --allow-privileged=true \
    --endpoint-reconciler-type=none
}

kube_curl() {
  curl -sS --max-time 5 --cacert "$SVC/kube/pki/ca.crt" -H "Authorization: Bearer $(token_of admin)" "$@"
}

kube_ready() { [[ $(kube_curl -o /dev/null -w '%{http_code}' "https://127.0.0.1:$KUBE_PORT/readyz") == 200 ]]; }

# POSTs an object unless it exists already (409), so a restart re-applies nothing.
kube_create() {
  local path=$1 body=$2 code
  code=$(kube_curl -o "$SVC/kube/last-response.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data "$body" "https://127.0.0.1:$KUBE_PORT$path")
  [[ $code == 201 || $code == 409 ]] ||
    fail_service kube-apiserver "$SVC/kube/last-response.json" "POST $path answered HTTP $code"
}

# The limited user may only read Deployments in namespace reflex-limited; tests prove that
# anything else is refused with 403.
apply_kube_rbac() {
  [[ -f $SVC/kube/.rbac-complete ]] && return
  kube_create /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"reflex-limited"}}'
  kube_create /apis/rbac.authorization.k8s.io/v1/namespaces/reflex-limited/roles \
    '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"deployment-reader","namespace":"reflex-limited"},"rules":[{"apiGroups":["apps"],"resources":["deployments"],"verbs":["get","list","watch"]}]}'
  kube_create /apis/rbac.authorization.k8s.io/v1/namespaces/reflex-limited/rolebindings \
    '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"reflex-limited-reads-deployments","namespace":"reflex-limited"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"deployment-reader"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"reflex-limited"}]}'
  touch "$SVC/kube/.rbac-complete"
}

wait_kube_apiserver() {
  local pid
  pid=$(running_pid kube-apiserver) || fail_service kube-apiserver "$LOGS/kube-apiserver.log" "the process is not running"
  wait_until kube-apiserver "$LOGS/kube-apiserver.log" "$KUBE_READY_TIMEOUT" "$pid" kube_ready
  apply_kube_rbac
}

# ---------------------------------------------------------------------------------------------
# kube-controller-manager
start_kube_controller_manager() {
  if running_pid kube-controller-manager >/dev/null; then return; fi
  local k=$SVC/kube
  say "starting kube-controller-manager $KUBE_VERSION (health on https://127.0.0.1:$KCM_PORT)"
  # Controllers for nodes and volumes have nothing to act on without kubelets; leaving them out
  # keeps the log about what matters (Deployments, ReplicaSets, namespaces, garbage collection).
  launch kube-controller-manager "$LOGS/kube-controller-manager.log" "$KUBE_HOME/bin/kube-controller-manager" \
    --kubeconfig="$SVC/kubeconfig" --authentication-kubeconfig="$SVC/kubeconfig" \
    --authorization-kubeconfig="$SVC/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$k/kcm-certs" \
    --leader-elect=false \
    --controllers='*,-node-ipam-controller,-node-lifecycle-controller,-taint-eviction-controller,-device-taint-eviction-controller,-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller,-persistentvolume-expander-controller,-persistentvolume-protection-controller,-persistentvolumeclaim-protection-controller,-ephemeral-volume-controller' \
    --service-account-private-key-file="$k/pki/sa.key" --root-ca-file="$k/pki/ca.crt"
}

kcm_ready() { [[ $(curl -sk --max-time 3 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$KCM_PORT/healthz") == 200 ]]; }

wait_kube_controller_manager() {
  local pid
  pid=$(running_pid kube-controller-manager) ||
    fail_service kube-controller-manager "$LOGS/kube-controller-manager.log" "the process is not running"
  wait_until kube-controller-manager "$LOGS/kube-controller-manager.log" "$KCM_READY_TIMEOUT" "$pid" kcm_ready
}

# ---------------------------------------------------------------------------------------------
# All three: up in the order the dispatcher interleaves with the other services, down with
# etcd last (after its client).
stop_kube_parts() {
  stop_service kube-controller-manager &
  stop_service kube-apiserver
  wait
}

status_kube() {
  local pid rc=0
  if pid=$(running_pid etcd); then
    status_row etcd running "$pid" "127.0.0.1:$ETCD_PORT" "$(etcd --version 2>/dev/null | head -n1)"
  else status_row etcd stopped - "127.0.0.1:$ETCD_PORT" -; rc=3; fi
  if pid=$(running_pid kube-apiserver); then
    status_row kube-apiserver running "$pid" "https://127.0.0.1:$KUBE_PORT" "$("$KUBE_HOME/bin/kube-apiserver" --version 2>/dev/null)"
  else status_row kube-apiserver stopped - "https://127.0.0.1:$KUBE_PORT" "Kubernetes v$KUBE_VERSION"; rc=3; fi
  if pid=$(running_pid kube-controller-manager); then
    status_row kube-controller-manager running "$pid" "https://127.0.0.1:$KCM_PORT" "$("$KUBE_HOME/bin/kube-controller-manager" --version 2>/dev/null)"
  else status_row kube-controller-manager stopped - "https://127.0.0.1:$KCM_PORT" -; rc=3; fi
  return $rc
}
