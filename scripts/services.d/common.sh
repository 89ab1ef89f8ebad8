# shellcheck shell=bash
# Helpers every service file uses: messages, ports, detached processes, Debian packages and
# templates. Sourced by scripts/services, which sets SVC, RUN, LOGS and the timeouts first.

say() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# Fails naming the service and its log, with the log's last lines, so CI output is enough to debug.
fail_service() {
  local name=$1 log=$2 why=$3
  {
    printf 'services: error: %s: %s\n' "$name" "$why"
    printf 'services: log file: %s\n' "$log"
    if [[ -f $log ]]; then
      printf -- '----- last 40 lines of %s -----\n' "$log"
      tail -n 40 "$log"
      printf -- '-----\n'
    fi
  } >&2
  exit 1
}

now() { date +%s; }

# ---------------------------------------------------------------------------------------------
# Ports: picked once (free, non-default, below the kernel's ephemeral range so outgoing
# connections never take them) and remembered so `env` stays stable across restarts.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local p taken=" ${*:-} "
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    [[ $taken == *" $p "* ]] && continue
    port_in_use "$p" && continue
    echo "$p"
    return
  done
  die "no free port found on 127.0.0.1 between 20000 and 32000"
}

load_ports() {
  if [[ -f $SVC/ports ]]; then
    # shellcheck disable=SC1091
    source "$SVC/ports"
    return
  fi
  mkdir -p "$SVC"
  local chosen=() var p
  for var in KAFKA_PORT KAFKA_CONTROLLER_PORT ETCD_PORT ETCD_PEER_PORT KUBE_PORT KCM_PORT PG_PORT; do
    p=$(pick_port "${chosen[@]}")
    chosen+=("$p")
    printf -v "$var" '%s' "$p"
    echo "$var=$p" >>"$SVC/ports.tmp"
  done
  mv "$SVC/ports.tmp" "$SVC/ports"
}

# ---------------------------------------------------------------------------------------------
# Processes: started detached (own session, so they outlive this script and the terminal),
# tracked by PID file; a PID counts as ours only if its command line still names our folder.
pidfile() { echo "$RUN/$1.pid"; }

running_pid() {
  local f pid
  f=$(pidfile "$1")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SVC" || return 1
  echo "$pid"
}

launch() {
  local name=$1 log=$2
  shift 2
  mkdir -p "$RUN" "$LOGS"
  printf '\n===== %s starting %s =====\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
  # 9>&-: the child must not inherit the lock of scripts/services (see with_lock there).
  setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! i
  echo "$pid" >"$(pidfile "$name")"
  # Until the child has exec'd, /proc shows the forked shell's command line, which running_pid
  # does not recognise: a check right after the launch (etcd's) then reported "not running".
  # Wait briefly for the exec; a child that dies at once is reported by the caller's check.
  for ((i = 0; i < 50; i++)); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SVC" && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# A zombie (exited, not yet reaped by its new parent) counts as stopped.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $state != Z ]]
}

# Sends SIGTERM, waits up to STOP_TIMEOUT, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(($(now) + STOP_TIMEOUT))
  while alive "$pid"; do
    if (($(now) > deadline)); then
      say "$name did not stop within ${STOP_TIMEOUT}s; killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
}

stop_service() {
  local pid
  if pid=$(running_pid "$1"); then
    stop_pid "$1" "$pid"
  fi
  rm -f "$(pidfile "$1")"
}

# wait_until NAME LOG TIMEOUT PID CHECK...: polls CHECK until it succeeds; fails early if PID dies.
wait_until() {
  local name=$1 log=$2 timeout=$3 pid=$4
  shift 4
  local deadline=$(($(now) + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pid ]] && ! alive "$pid"; then
      fail_service "$name" "$log" "the process exited during startup"
    fi
    if (($(now) > deadline)); then
      fail_service "$name" "$log" "not ready after ${timeout}s (check: $*)"
    fi
    sleep 0.5
  done
}

# One row of `scripts/services status`.
status_row() { printf '%-24s %-9s %-8s %-26s %s\n' "$@"; }

# ---------------------------------------------------------------------------------------------
# System packages (Debian): installed only when missing, only as root, `apt-get update` once.
APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null || die "missing $*; install it with your package manager"
  [[ $(id -u) == 0 ]] || die "missing $*; run: sudo apt-get install -y $*"
  if [[ -z $APT_UPDATED ]]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_cmd() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null || apt_install "$pkg"
}

# render TEMPLATE OUTPUT VAR...: writes templates/TEMPLATE to OUTPUT with ${VAR} replaced by
# the variable's value, for the listed variables only (a `$` in the template stays as it is).
render() {
  local template=$TEMPLATES/$1 out=$2 var names=''
  shift 2
  need_cmd envsubst gettext-base
  for var in "$@"; do
    # shellcheck disable=SC2163 # exporting the variable named by $var is the point
    export "$var"
    names+=" \${$var}"
  done
  envsubst "$names" <"$template" >"$out.tmp" || die "rendering $template failed"
  mv "$out.tmp" "$out"
}
