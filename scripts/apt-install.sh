#!/usr/bin/env bash
# Install Debian packages that are missing, without upgrading anything else.
# Usage: scripts/apt-install.sh PACKAGE...
source "$(dirname "$0")/lib.sh"
apt_install "$@"
