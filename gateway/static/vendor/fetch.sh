#!/bin/sh
# Re-fetch the page's vendored libraries from the npm registry, at the pinned versions.
# Their built files are committed (and shipped as package data) so that `pip install .`
# serves the page with no node; run this only to move a pin: edit the versions, run it,
# read the diff, commit. Needs npm.
set -eu
MARKED=18.2.1      # Markdown to HTML (https://github.com/markedjs/marked, MIT)
DOMPURIFY=3.5.0    # HTML sanitizer (https://github.com/cure53/DOMPurify, Apache-2.0 or MPL-2.0)

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "marked@$MARKED" "dompurify@$DOMPURIFY" >/dev/null
mkdir marked dompurify
tar xzf "marked-$MARKED.tgz" -C marked
tar xzf "dompurify-$DOMPURIFY.tgz" -C dompurify
# The source-map comment names a file we do not ship; the browser would ask for it in vain.
sed '/^\/\/# sourceMappingURL=/d' marked/package/lib/marked.umd.js >"$here/marked.umd.js"
sed '/^\/\/# sourceMappingURL=/d' dompurify/package/dist/purify.min.js >"$here/purify.min.js"
cp marked/package/LICENSE "$here/marked.LICENSE"
cp dompurify/package/LICENSE "$here/dompurify.LICENSE"
echo "marked $MARKED, dompurify $DOMPURIFY -> $here"
