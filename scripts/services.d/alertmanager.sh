# shellcheck shell=bash
# Prometheus Alertmanager and amtool, built from Go modules and cached per version. Nothing runs
# here: Alertmanager is cheap to start, so each test starts its own (with its own configuration,
# rendered from deploy/alertmanager.yaml) and stops it by PID. `up` only makes sure the binaries
# exist; `env` prints their paths. Sourced by scripts/services.

ALERTMANAGER_BIN=$ALERTMANAGER_HOME/bin/alertmanager
AMTOOL_BIN=$ALERTMANAGER_HOME/bin/amtool

# `go install github.com/prometheus/alertmanager/cmd/alertmanager@vX` fails: ui/web.go embeds
# ui/app/dist, which upstream builds with npm and the module does not ship. So the module is
# copied out of Go's module cache (read-only there), given a placeholder page, and built in place.
# The web UI is then that placeholder; the API (/api/v2) and amtool, which tests use, are whole.
ensure_alertmanager_binaries() {
  [[ -f $ALERTMANAGER_HOME/.complete && -x $ALERTMANAGER_BIN && -x $AMTOOL_BIN ]] && return
  command -v go >/dev/null || die "Go is needed to build Alertmanager $ALERTMANAGER_VERSION (go 1.21+ on PATH; newer toolchains are fetched through the module proxy)"
  local src=$ALERTMANAGER_HOME/src log=$ALERTMANAGER_HOME/build.log
  mkdir -p "$ALERTMANAGER_HOME/bin"
  say "building alertmanager and amtool $ALERTMANAGER_VERSION from Go modules (cold: ~5 min); log: $log"
  (
    set -e
    local module=github.com/prometheus/alertmanager dir
    dir=$(go mod download -json "$module@v$ALERTMANAGER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
    [[ -d $dir ]] || { echo "go mod download printed no Dir for $module@v$ALERTMANAGER_VERSION"; exit 1; }
    rm -rf "$src"
    cp -R "$dir" "$src"
    chmod -R u+w "$src"
    mkdir -p "$src/ui/app/dist"
    printf '<!doctype html><title>Alertmanager</title><p>Web UI not built (Reflex test build); use /api/v2 or amtool.\n' \
      >"$src/ui/app/dist/index.html"
    cd "$src"
    # Stamped the way upstream's promu does, so `alertmanager --version` tells the truth.
    local v=github.com/prometheus/common/version
    local ldflags="-s -w -X $v.Version=$ALERTMANAGER_VERSION -X $v.Branch=HEAD -X $v.BuildUser=reflex-services"
    for cmd in alertmanager amtool; do
      CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$ALERTMANAGER_HOME/bin/$cmd.tmp" "./cmd/$cmd"
      mv "$ALERTMANAGER_HOME/bin/$cmd.tmp" "$ALERTMANAGER_HOME/bin/$cmd"
    done
  ) >"$log" 2>&1 || fail_service alertmanager "$log" "building from Go modules failed"
  touch "$ALERTMANAGER_HOME/.complete"
}

status_alertmanager() {
  if [[ -x $ALERTMANAGER_BIN ]]; then
    status_row alertmanager on-demand - "(started by each test)" "$("$ALERTMANAGER_BIN" --version 2>/dev/null | head -n1)"
  else
    # Not a failure of `status`: nothing runs until a test starts one; `up` builds it.
    status_row alertmanager not-built - - "v$ALERTMANAGER_VERSION"
  fi
}
