#!/usr/bin/env bash
# Pins the filter image digest in the WasmPlugin every istio/wasmplugin recipe
# renders from: `sha256: "<digest>"`. Idempotent; says whether the pin moved.
#
#   deploy/images/pin-wasm.sh DIGEST
set -euo pipefail
digest=$1
file=$(cd "$(dirname "$0")/../.." && pwd)/istio/wasmplugin/base/wasmplugin.yaml
[[ $digest =~ ^[0-9a-f]{64}$ ]] || { echo "pin-wasm: '$digest' is not a sha256 hex digest" >&2; exit 2; }
grep -Eq '^  sha256: "[0-9a-f]{64}"$' "$file" || { echo "pin-wasm: no '  sha256: \"<hex>\"' line in $file" >&2; exit 2; }
old=$(sed -nE 's/^  sha256: "([0-9a-f]{64})"$/\1/p' "$file")
if [[ $old == "$digest" ]]; then
  echo "filter image pin unchanged: sha256 $digest"
else
  sed -i -E "s/^  sha256: \"[0-9a-f]{64}\"$/  sha256: \"$digest\"/" "$file"
  echo "filter image pin updated: sha256 $old -> $digest in ${file#"$PWD"/}"
  echo "  (the filter changed: commit that file with it)"
fi
