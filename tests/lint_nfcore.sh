#!/usr/bin/env bash
# nf-core lint of this repository, offline: `make lint-nfcore NFCORE_MODULES=<nf-core/modules clone>`
#
#   1. nf-core modules lint --local --all   (the modules in modules/local)
#   2. nf-core pipelines lint                (the pipeline)
#
# nf-core tools clones nf-core/modules from GitHub; here it gets NFCORE_MODULES (a local clone
# or a bare mirror), set up as its cache under a private XDG_CONFIG_HOME, so no network is
# needed. Nextflow comes from tests/get_nextflow.sh (24.10: too old for `nextflow inspect`, so
# the container checks warn here; the GitHub Actions lint job runs a current Nextflow).
# Prints both reports; exits non-zero when the module lint fails (the pipeline lint's counts are
# recorded in docs/usage.md: it also checks nf-core community files this project does not ship).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NFCORE="${NFCORE:-$REPO/.venv-nfcore/bin/nf-core}"
MODULES="${NFCORE_MODULES:?set NFCORE_MODULES to a local clone of nf-core/modules}"
[[ -x "$NFCORE" ]] || { echo "no nf-core tools at $NFCORE (make lint-nfcore installs them)" >&2; exit 2; }

PATH="$(dirname "$(bash "$REPO/tests/get_nextflow.sh")"):$PATH"
export PATH
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache"
export NFCORE_NO_VERSION_CHECK=1 NXF_OFFLINE=true HIDE_PROGRESS=1
git clone --quiet "$MODULES" "$XDG_CONFIG_HOME/nfcore/nf-core/modules"
git -C "$XDG_CONFIG_HOME/nfcore/nf-core/modules" checkout --quiet -B master origin/HEAD 2>/dev/null \
    || git -C "$XDG_CONFIG_HOME/nfcore/nf-core/modules" checkout --quiet master
# offline: every pipeline lint test except actions_schema_validation, which downloads the
# GitHub Actions schema (files_unchanged is off in .nf-core.yml)
keys=$("$(dirname "$NFCORE")/python" -c "
from nf_core.pipelines.lint import PipelineLint
print(' '.join('-k ' + t for t in PipelineLint._get_all_lint_tests(False) if t != 'actions_schema_validation'))")

cd "$REPO"
status=0
"$NFCORE" modules --git-remote "$XDG_CONFIG_HOME/nfcore/nf-core/modules" --branch master \
    lint --local --all > "$work/modules.txt" 2>&1 || status=1
# shellcheck disable=SC2086
"$NFCORE" pipelines lint --dir . $keys > "$work/pipeline.txt" 2>&1 || true
git checkout --quiet -- modules.json 2>/dev/null || true   # lint may rewrite it

for part in modules pipeline; do
    echo "=== nf-core ${part} lint ==="
    sed -n '/Tests Ignored\|Test Warnings\|Tests Failed\|LINT RESULTS/,$p' "$work/$part.txt" \
        | grep -v '^\s*$' || tail -40 "$work/$part.txt"
done
exit "$status"
