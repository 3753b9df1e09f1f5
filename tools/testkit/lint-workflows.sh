#!/usr/bin/env bash
# Lint every GitHub workflow (.github/workflows/*.yml) with actionlint, built from its Go module on first use
# (tools/testkit/build-actionlint.sh; cached outside the repository). Extra arguments go to actionlint, e.g. -format.
# actionlint also runs shellcheck on `run:` scripts when shellcheck is installed (GitHub's runners have it).
set -euo pipefail
cd "$(dirname "$0")/../.."

actionlint="$(tools/testkit/build-actionlint.sh)"
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if ((${#workflows[@]} == 0)); then
    echo "lint-workflows: no workflow under .github/workflows" >&2
    exit 1
fi
shellcheck_note="without shellcheck"
command -v shellcheck >/dev/null 2>&1 && shellcheck_note="with $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
echo "lint-workflows: actionlint $("${actionlint}" -version | head -n 1) (${shellcheck_note}) on ${#workflows[@]} workflows"
"${actionlint}" "$@" "${workflows[@]}"
echo "lint-workflows: ${#workflows[@]} workflows clean: ${workflows[*]}"
