#!/bin/sh
# Tiny static "site generator": copy src/ to public/ and fill in placeholders.
# Runs with nothing but busybox, no network needed.
set -eu

SRC=src
OUT=public

BUILD_TIME=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
# Keep only safe characters so the value can go into sed and HTML untouched.
COMMIT=$(printf '%s' "${COMMIT_REF:-}" | tr -cd 'A-Za-z0-9._/-' | cut -c1-64)
if [ -n "$COMMIT" ]; then
    SHORT=$(printf '%s' "$COMMIT" | cut -c1-12)
    COMMIT_HTML="from commit <code title=\"$COMMIT\">$SHORT</code>"
else
    COMMIT_HTML="from a local working copy (no <code>COMMIT_REF</code> set)"
fi

echo "building site: $SRC -> $OUT"
rm -rf "$OUT"
mkdir -p "$OUT"
cp -R "$SRC"/. "$OUT"/

find "$OUT" -type f \( -name '*.html' -o -name '*.css' \) | while read -r f; do
    sed -i \
        -e "s|{{BUILD_TIME}}|$BUILD_TIME|g" \
        -e "s|{{COMMIT}}|$COMMIT_HTML|g" \
        -e "s|{{BUILD_USER}}|$(id -un 2>/dev/null || id -u)|g" \
        "$f"
    echo "  $f"
done

echo "done: $(find "$OUT" -type f | wc -l) files in $OUT/"
