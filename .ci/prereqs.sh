#!/usr/bin/env bash
# What the tests against the real OpenCode server need from the machine: Debian's ripgrep (OpenCode's find and
# grep tools run `rg` from PATH and would otherwise try to download it), git (OpenCode's session diffs), and
# Node.js with npm (the testkit installs the pinned `opencode-ai` npm package into its cache on first use).
#
# Usage: .ci/prereqs.sh       (installs what is missing with apt-get when run as root; fails naming the rest)
set -euo pipefail

missing=()
command -v rg >/dev/null || missing+=(ripgrep)
command -v git >/dev/null || missing+=(git)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
    echo "installing ${missing[*]} with apt-get" >&2
    if [[ $(id -u) != 0 ]]; then
        echo "not root: install ${missing[*]} by hand" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi
echo "rg: $(rg --version | head -1); node: $(node --version); npm: $(npm --version); git: $(git --version)" >&2
