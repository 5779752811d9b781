#!/usr/bin/env bash
# System packages the tests use as real SMTP clients: swaks (Debian package) and
# Postfix's tools (smtp-source, smtp-sink, sendmail). Idempotent: installs only what
# is missing, with apt-get --no-install-recommends. Without root (or passwordless
# sudo), or without apt-get, it warns and exits 0; the tests that need swaks then
# skip and say why.
set -euo pipefail

warn() { echo "install-system-packages: warning: $*" >&2; }

missing=()
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
if ! command -v smtp-source >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-source ]; then
  missing+=(postfix)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  warn "no apt-get here; install ${missing[*]} yourself"
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    warn "not root: skipping the install of ${missing[*]} (tests that need them will skip)"
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" postfix "* ]]; then
  # Only the tools are wanted: "No configuration" leaves the machine's mail setup alone.
  echo "postfix postfix/main_mailer_type select No configuration" \
    | "${sudo[@]}" debconf-set-selections
fi
echo "install-system-packages: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
