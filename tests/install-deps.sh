#!/usr/bin/env bash
# Installs the Debian packages the integration tests' real servers need
# (see tests/README.md). Idempotent: exits at once when everything is present.
# Run as root (CI runs as root). Never starts the system services of these
# packages: tests start their own private instances on loopback.
set -euo pipefail

PKGS=(
  git               # Debian's git (gitolite3 needs it; tests use the first git in PATH)
  openssl           # CA / server certificates, apr1 password hashes
  openssh-client    # ssh, ssh-keygen, ssh-keyscan
  openssh-server    # sshd for SshServer
  nginx             # HttpsServer: TLS + basic auth in front of git-http-backend
  fcgiwrap          # HttpsServer: runs git-http-backend as a CGI behind nginx
  gitolite3         # needed by gitolite tests
  prometheus        # promtool: checks the `metrics` exposition (tests/fleet.rs)
  prometheus-node-exporter  # scrapes it through the textfile collector (tests/fleet.rs)
  man-db            # `git pushmirror --help` runs man (tests/fleet.rs)
  systemd           # systemd-analyze verify of the shipped units (tests/fleet.rs)
  passwd            # useradd/groupadd: the shared-repository test's two Unix users
  util-linux        # unshare (credentials.rs), setpriv (hardening.rs), mount/umount
  mount             # mount --bind / -t tmpfs
  procps            # pgrep: tests check that killed process groups are gone
  git-lfs           # tests/lfs.rs: makes LFS commits upstream, clones the mirror to compare contents
  python3-pip       # installs giftless (below) where no pip is there yet
  msmtp             # a real sendmail-compatible client for the notify mail example (tests/fleet.rs)
  python3-aiosmtpd  # the real SMTP server that example delivers to, into a Maildir (tests/fleet.rs)
  jq                # the notify examples in docs/operations.md use it
)

# tests/lfs.rs's LFS server: giftless from PyPI (its package declares no dependencies, so they
# are listed here, pinned below the majors that broke it).
PIP_PKGS=(
  giftless==0.6.2 flask werkzeug 'marshmallow<4' 'webargs<8.7' 'flask-marshmallow<1.3'
  flask-classful figcan python-dotenv pyyaml pyjwt cachetools python-dateutil typing-extensions
)

giftless_ok() { python3 -c 'import giftless.app' >/dev/null 2>&1; }

install_giftless() {
  giftless_ok && return 0
  echo "install-deps.sh: installing giftless (pip)" >&2
  python3 -m pip install -q "${PIP_PKGS[@]}" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "${PIP_PKGS[@]}"
  giftless_ok || { echo "install-deps.sh: giftless failed to install" >&2; exit 1; }
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  install_giftless
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: missing packages: ${missing[*]} (run as root)" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Keep the packages' own services (system sshd, system nginx/fcgiwrap) from being
# started by their postinst scripts: a policy-rc.d that denies everything,
# put in place only when none exists, and removed again afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}"

for p in "${missing[@]}"; do
  installed "$p" || { echo "install-deps.sh: $p failed to install" >&2; exit 1; }
done
install_giftless
