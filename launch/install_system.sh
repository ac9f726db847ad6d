#!/usr/bin/env bash
# Debian packages the test suite drives for real: headless Chromium (the chat page test),
# SLURM + munge (the cluster tests), shellcheck (the lint step) and g++ (torch.compile on the CPU). Installs only what is missing; needs root or sudo.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # the daemons live in sbin, often not on a user's PATH
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v slurmctld >/dev/null || missing+=(slurmctld)
command -v slurmd >/dev/null || missing+=(slurmd)
command -v sbatch >/dev/null || missing+=(slurm-client)
command -v munged >/dev/null || missing+=(munge)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v g++ >/dev/null || missing+=(g++)   # torch.compile's inductor writes C++ on the CPU (compile: true tests)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "[install] Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
