#!/usr/bin/env bash
# Installs the system packages the benchmarks (and some tools) use, on Debian/Ubuntu.
# Idempotent: packages already installed are skipped. Run as root (or with sudo).
# Nothing here is needed by `make run` or `make test`; the benchmarks check for these
# tools and print this script's name when one is missing.
set -euo pipefail

say() { printf '[install-system-packages] %s\n' "$*" >&2; }

if ! command -v apt-get >/dev/null; then
  say "no apt-get: install these by hand with your system's package manager:"
  say "  postfix (provides /usr/sbin/smtp-source, /usr/sbin/smtp-sink and postfix itself)"
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  say "run as root: sudo bash $0"
  exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

updated=0
install_packages() {
  local missing=()
  for package in "$@"; do
    installed "$package" || missing+=("$package")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$updated" -eq 0 ]; then
    apt-get update -qq
    updated=1
  fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# --- postfix: smtp-source and smtp-sink (bench/sidecar.py, bench/smtp_intake.py) and the
# Postfix relay peer (bench/postfix.py runs a private instance under a temporary
# directory; the machine's default instance is left unconfigured and is never started).
if ! installed postfix; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  install_packages postfix
fi
