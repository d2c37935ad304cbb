#!/usr/bin/env bash
# Make sure a local Fashion-MNIST copy exists. On Debian/Ubuntu as root the distribution package
# is installed; otherwise anomalia downloads the files itself (pinned checksums) on first use.
set -euo pipefail
if [ -d /usr/share/datasets/fashion-mnist ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  fi
fi
