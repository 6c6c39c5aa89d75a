#!/usr/bin/env bash
# Runs faultline test specs one after another, the way CI should: each run
# leaves its results folder (history, report.html, junit.xml, node logs)
# under the store, a one-line verdict is printed per spec, and the exit
# code says whether the job fails.
#
# Usage: ci/run-faultline.sh [SPEC.yaml ...]      (default: ci/*.yaml)
#
# Environment:
#   FAULTLINE_BIN           faultline binary (default: target/release/faultline,
#                           built with cargo if missing)
#   FAULTLINE_STORE         results root (default: store)
#   FAULTLINE_ALLOW_UNKNOWN set to 1 to let an unknown verdict (exit 2) pass
#   FAULTLINE_ARGS          extra flags for every `faultline test`, e.g.
#                           "--time-limit 10s"
#
# Exit code: 1 if any spec is invalid, else 3 if any had a harness error,
# else 2 if any is unknown (unless allowed), else 0.
set -uo pipefail
cd "$(dirname "$0")/.."

bin="${FAULTLINE_BIN:-target/release/faultline}"
store="${FAULTLINE_STORE:-store}"
if [[ ! -x "$bin" ]]; then
  echo "faultline: building $bin" >&2
  cargo build --release -p faultline -p faultline-node || exit 3
fi

specs=("$@")
if [[ ${#specs[@]} -eq 0 ]]; then
  specs=(ci/*.yaml)
fi

invalid=0 errors=0 unknown=0
for spec in "${specs[@]}"; do
  base="$(basename "$spec" .yaml)"
  root="$store/$base"
  mkdir -p "$root"
  # shellcheck disable=SC2086 # FAULTLINE_ARGS is a list of flags
  "$bin" test --spec "$spec" --store "$root" --quiet ${FAULTLINE_ARGS:-}
  code=$?
  run="$(ls -td "$root"/*/latest 2>/dev/null | head -n 1)"
  if [[ -n "$run" ]]; then
    run="$(cd "$run" && pwd -P)"
    # Rebuilds report.html and writes JUnit XML beside the history.
    "$bin" report "$run" --junit "$run/junit.xml" --quiet || true
  fi
  case "$code" in
    0) verdict=valid ;;
    1) verdict=INVALID; invalid=$((invalid + 1)) ;;
    2) verdict=UNKNOWN; unknown=$((unknown + 1)) ;;
    *) verdict="HARNESS ERROR (exit $code)"; errors=$((errors + 1)) ;;
  esac
  echo "faultline: $spec: $verdict${run:+ — report $run/report.html}"
done

if (( invalid > 0 )); then exit 1; fi
if (( errors > 0 )); then exit 3; fi
if (( unknown > 0 )) && [[ "${FAULTLINE_ALLOW_UNKNOWN:-0}" != 1 ]]; then exit 2; fi
exit 0
