#!/usr/bin/env bash
# Runs the ```sh blocks of a Markdown file, in order, as a reader would from
# the repository root, so that the documentation's commands cannot rot. The
# reader's root is a scratch folder with build/ and recipes/ linked in, so the
# runs it writes (runs/...) never land in the source tree.
#   run_doc_commands.sh SOURCE_DIR BUILD_DIR docs/getting-started.md
set -euo pipefail
source=$(realpath "$1") build=$(realpath "$2") doc=$3
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
ln -s "$build" "$root/build"
ln -s "$source/recipes" "$root/recipes"
ln -s "$source/docs" "$root/docs"
cd "$root"
block=0
while IFS= read -r -d $'\0' commands; do
  block=$((block + 1))
  if ! out=$(bash -euo pipefail -c "$commands" 2>&1); then
    echo "$doc: block $block failed:"
    echo "$commands"
    echo "--- output:"
    echo "$out" | tail -20
    exit 1
  fi
done < <(awk '/^```sh$/ { inside = 1; text = ""; next }
              /^```/ && inside { inside = 0; printf "%s%c", text, 0; next }
              inside { text = text $0 "\n" }' "$source/$doc")
[ "$block" -gt 0 ] || { echo "$doc: no sh blocks"; exit 1; }
echo "$doc: $block blocks ran"
