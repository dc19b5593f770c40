#!/usr/bin/env bash
# Builds the image's base from Debian packages, for machines that reach a Debian mirror
# but no container registry (scripts/build-image.sh uses it when the upstream
# python:3.11-slim-bookworm cannot be pulled, or with BASE=local), and prints its name:
#   localhost/finops-operator-base:bookworm-<hash>
# `debootstrap --variant=minbase bookworm` with Debian's Python 3.11 (python3,
# python3-venv, python3-pip, python-is-python3) and ca-certificates, brought up to date
# from bookworm-updates and bookworm-security, then `podman import`. The root
# filesystem is kept as .cache/image-base/<hash>/rootfs.tar, so a lost image is
# imported again without debootstrap. <hash> covers this script and the mirrors.
#
# The mirrors are the machine's own apt sources (/etc/apt/sources.list and
# /etc/apt/sources.list.d/, one-line or deb822), since a machine without a registry
# usually still reaches its Debian mirror; DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR
# override them. Needs root (debootstrap), debootstrap and podman.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates

# The first URI the machine's apt sources give for a suite (deb lines only).
apt_uri() {
  local want=$1 file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk -v s="$want" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == s) { print $i; exit } }' "$file"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    # deb822: paragraphs of "Field: value"; the first deb paragraph naming the suite.
    awk -v s="$want" 'BEGIN { RS = ""; FS = "\n" } {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (n = 1; n <= NF; n++) {
          if ($n ~ /^Types:/) types = $n
          if ($n ~ /^URIs:/) uris = $n
          if ($n ~ /^Suites:/) suites = " " substr($n, 8) " "
          if ($n ~ /^Enabled: *no/) enabled = "no"
        }
        if (enabled == "yes" && types ~ /[ :]deb( |$)/ && index(suites, " " s " ")) {
          sub(/^URIs: */, "", uris); split(uris, u, " "); print u[1]; exit
        }
      }' "$file"
  done
}

mirror=${DEBIAN_MIRROR:-$(apt_uri "$suite" | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-$(apt_uri "$suite-security" | head -n1)}
hash=$( (cat "$repo/scripts/build-image-base.sh"; echo "$mirror $security") | sha256sum | cut -c1-16)
name=localhost/finops-operator-base:$suite-$hash
out=$repo/.cache/image-base/$hash

if podman image exists "$name"; then
  echo "$name"
  exit 0
fi
# One build at a time (worktrees share .cache): a second run waits, then finds it.
mkdir -p "$repo/.cache/image-base"
exec 9>"$repo/.cache/image-base.lock"
flock 9
if podman image exists "$name"; then
  echo "$name"
  exit 0
fi
if [ -f "$out/rootfs.tar" ]; then
  echo "build-image-base: importing the cached $out/rootfs.tar" >&2
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-image-base: debootstrap needs root; run as root, or give" \
      "BASE=<a Python 3.11 Debian image you have> to scripts/build-image.sh" >&2
    exit 1
  fi
  echo "build-image-base: debootstrap $suite from $mirror (about a minute)" >&2
  start=$(date +%s)
  tmp=$(mktemp -d "$repo/.cache/image-base/build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  root=$tmp/root
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" \
    >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    echo "build-image-base: debootstrap failed (log above)" >&2
    exit 1
  }
  # Security and point-release fixes, then nothing of apt's state in the image.
  {
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [ -z "$security" ] || echo "deb $security $suite-security main"
  } >"$root/etc/apt/sources.list"
  # The host's Acquire settings (proxy, a frozen mirror's validity) hold for its mirrors
  # here too; they are removed with apt's state below.
  apt-config dump | grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date|Retries)' >"$root/etc/apt/apt.conf.d/99host" || true
  if ! { chroot "$root" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get upgrade -y -qq; } \
    >"$tmp/upgrade.log" 2>&1; then
    tail -n 30 "$tmp/upgrade.log" >&2
    echo "build-image-base: apt-get upgrade in the new root failed (log above)" >&2
    exit 1
  fi
  chroot "$root" apt-get clean
  rm -rf "$root/etc/apt/apt.conf.d/99host" "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
  # Manuals, documentation and translations are for people at a terminal; the
  # licences (copyright files) stay.
  find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
  # debootstrap copies the host's resolver and hostname: an image takes its own at run time.
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
  tar --numeric-owner -C "$root" -cf "$tmp/rootfs.tar" .
  rm -rf "$root"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  for old in "$repo"/.cache/image-base/*; do
    [ "$old" = "$out" ] || rm -rf "$old"
  done
  echo "build-image-base: built in $(($(date +%s) - start))s" >&2
fi
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$out/rootfs.tar" "$name" >/dev/null
echo "$name"
