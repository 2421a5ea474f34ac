#!/usr/bin/env bash
# Refresh the Swagger UI files that /docs serves (src/bugstream/web/swagger-ui/), from the
# swagger-ui-dist package on npm: bugstream serves them itself, so /docs works offline and
# no page of ours loads a script from a CDN. Usage: scripts/vendor_swagger_ui.sh [VERSION]
set -euo pipefail
version="${1:-5}"
target="$(cd "$(dirname "$0")/.." && pwd)/src/bugstream/web/swagger-ui"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
mkdir -p "$target"
for name in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
    favicon-32x32.png LICENSE NOTICE; do
  cp "$work/package/$name" "$target/$name"
done
# Source maps are left out, and the stylesheet's pointer to its own.
sed -i '/sourceMappingURL/d' "$target/swagger-ui.css"
node -p "require('$work/package/package.json').version" > "$target/VERSION"
echo "Swagger UI $(cat "$target/VERSION") in $target"
