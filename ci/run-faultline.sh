#!/usr/bin/env bash
# Runs faultline test specs one after another, the way CI should: each run
# leaves its results folder (history, report.html, junit.xml, node logs)
# under the store, a one-line verdict is printed per spec, and the exit
# code says whether the job fails.
#
# Usage: ci/run-faultline.sh [SPEC.yaml ...]      (default: ci/default.yaml)
#
# Name the specs your CI should gate on. With none, only ci/default.yaml
# runs (faultline-node, expected valid). The other files in ci/ are not a
# default on purpose: etcd.yaml, generic-redis.yaml and redis-sentinel.yaml
# need etcd or Redis installed, and redis-sentinel.yaml demonstrates lost
# writes, so its verdict is INVALID (exit 1) by design. To run the whole
# faultline-node set: ci/run-faultline.sh ci/default.yaml
# ci/register-partitions.yaml ci/set-kills.yaml ci/append-links.yaml
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
  specs=(ci/default.yaml)
fi

# The folders the `latest` links under a spec's store point at, one a line.
latest_runs() {
  local link
  for link in "$1"/*/latest; do
    [[ -d "$link" ]] && (cd "$link" && pwd -P)
  done
  return 0
}

invalid=0 errors=0 unknown=0
for spec in "${specs[@]}"; do
  base="$(basename "$spec" .yaml)"
  root="$store/$base"
  mkdir -p "$root"
  # `faultline test` writes report.html (when a history exists) and JUnit
  # for every outcome, a harness error included (one errored "harness"
  # case). This run's folder is the `latest` that moved during the run, so
  # an older run kept in the store is never mistaken for it.
  junit="$root/junit.xml"
  rm -f "$junit"
  before="$(latest_runs "$root")"
  # shellcheck disable=SC2086 # FAULTLINE_ARGS is a list of flags
  "$bin" test --spec "$spec" --store "$root" --quiet --junit "$junit" ${FAULTLINE_ARGS:-}
  code=$?
  run="$(latest_runs "$root" | grep -vxF -e "$before" | head -n 1)"
  if [[ -n "$run" ]]; then
    if [[ -f "$junit" ]]; then
      mv -f "$junit" "$run/junit.xml"
    else
      # faultline itself died: rebuild report.html and JUnit from the folder.
      "$bin" report "$run" --junit "$run/junit.xml" --quiet || true
    fi
  fi
  # Without a folder of this run, JUnit stays at $root/junit.xml.
  case "$code" in
    0) verdict=valid ;;
    1) verdict=INVALID; invalid=$((invalid + 1)) ;;
    2) verdict=UNKNOWN; unknown=$((unknown + 1)) ;;
    *) verdict="HARNESS ERROR (exit $code)"; errors=$((errors + 1)) ;;
  esac
  report=""
  if [[ -n "$run" && -f "$run/report.html" ]]; then report="$run/report.html"; fi
  echo "faultline: $spec: $verdict${report:+ — report $report}"
done

if (( invalid > 0 )); then exit 1; fi
if (( errors > 0 )); then exit 3; fi
if (( unknown > 0 )) && [[ "${FAULTLINE_ALLOW_UNKNOWN:-0}" != 1 ]]; then exit 2; fi
exit 0
