#!/usr/bin/env bash
# Builds the operator's image from the Dockerfile with podman and prints its name:
#   localhost/finops-operator:<version>-<hash>
# <hash> covers what goes into the image (Dockerfile, .dockerignore, requirements.lock,
# pyproject.toml, src/finops_operator/, this script) and the base image's
# id: the build runs only when no image of that name exists yet (podman's layer cache
# then keeps a rebuild after a source change to the last layers).
#
# BASE: the base image (the Dockerfile's build argument). Default: upstream's
# docker.io/library/python:3.11-slim-bookworm, pulled if absent. If it cannot be
# pulled (no registry reachable, as on this project's CI), or with BASE=local, the
# base is made from Debian packages by scripts/build-image-base.sh (cached).
#
# The build reaches PyPI (pip installs requirements.lock): the host's CA bundle is
# mounted into the build's RUN steps (a TLS-inspecting proxy's CA is trusted; nothing
# of it lands in the image), and the host's PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
# PIP_TRUSTED_HOST, PIP_DEFAULT_TIMEOUT and proxy variables are passed on.
# podman runs with scripts/containers.conf (runc; ulimits root may set without
# CAP_SYS_RESOURCE) unless CONTAINERS_CONF is set.
#
# Needs podman and runc (installed with apt-get when run as root), debootstrap for a
# local base; the build log is .cache/image/build.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/scripts/containers.conf}
default_base=docker.io/library/python:3.11-slim-bookworm
base=${BASE:-$default_base}

# Debian's packages, installed as root (waiting for another apt/dpkg to finish), else
# a message saying which.
install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-image: please install $* (sudo apt-get install $*)" >&2
    case " $* " in *" debootstrap "*)
      echo "build-image: (debootstrap makes a base; or give BASE=<a Python 3.11 Debian image>)" >&2
      ;;
    esac
    exit 1
  fi
  echo "build-image: installing Debian's $*" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "$@" >/dev/null
}
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ "$base" != local ] || command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] || install "${missing[@]}"

if [ "$base" = local ]; then
  base=$(scripts/build-image-base.sh)
elif ! podman image exists "$base"; then
  if ! pulled=$(timeout 300 podman pull -q "$base" 2>&1); then
    if [ "$base" != "$default_base" ]; then
      echo "build-image: cannot pull BASE=$base: $pulled" >&2
      exit 1
    fi
    echo "build-image: cannot pull $base (${pulled##*$'\n'});" \
      "using a base made from Debian packages (scripts/build-image-base.sh)" >&2
    command -v debootstrap >/dev/null 2>&1 || install debootstrap
    base=$(scripts/build-image-base.sh)
  fi
fi
base_id=$(podman image inspect --format '{{.Id}}' "$base")

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
hash=$(
  {
    sha256sum Dockerfile .dockerignore requirements.lock pyproject.toml scripts/build-image.sh
    find src/finops_operator -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum
    echo "$base_id"
  } | sha256sum | cut -c1-12
)
name=localhost/finops-operator:$version-$hash
if podman image exists "$name"; then
  echo "$name"
  exit 0
fi
# One build at a time (worktrees share .cache): a second run waits, then finds it.
mkdir -p .cache/image
exec 9>.cache/image/lock
flock 9
if podman image exists "$name"; then
  echo "$name"
  exit 0
fi

args=(build --network=host --pull=never --layers -f Dockerfile -t "$name" --build-arg "BASE=$base")
ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then
  args+=(-v "$ca:$ca:ro" --build-arg "PIP_CERT=$ca")
fi
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT \
  HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
  if [ -n "${!var:-}" ]; then
    args+=(--build-arg "$var=${!var}")
  fi
done
log=.cache/image/build.log
echo "build-image: building $name on $base" >&2
start=$(date +%s)
if ! podman "${args[@]}" . >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "build-image: podman build failed (log above, all of it in $log)" >&2
  exit 1
fi
size=$(podman image inspect --format '{{.Size}}' "$name")
echo "build-image: built in $(($(date +%s) - start))s, $((size / 1000000)) MB" >&2
echo "$name"
