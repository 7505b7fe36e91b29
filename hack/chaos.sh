#!/usr/bin/env bash
# Runs the long chaos run of test/chaos (as `make test-chaos` does) and puts its markdown report
# into docs/reliability.md, between the lines <!-- chaos-report:begin --> and
# <!-- chaos-report:end -->. A failed run's report is put there too, so that it can be read, and
# the script then exits with the test's status. CHAOS_DURATION (default 10m), CHAOS_SEED and the
# other CHAOS_* variables of test/chaos/suite_test.go pass through.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${CHAOS_DURATION:-10m}
report=${CHAOS_REPORT:-$root/bin/chaos-report.md}
doc=$root/docs/reliability.md
mkdir -p "$(dirname "$report")"
rm -f "$report"

status=0
KUBEBUILDER_ASSETS="$(hack/controlplane.sh)" CHAOS_DURATION="$duration" CHAOS_REPORT="$report" \
  CHAOS_COMMAND="${CHAOS_COMMAND:-make chaos-report CHAOS_DURATION=$duration CHAOS_MANAGERS=${CHAOS_MANAGERS:-1}}" \
  go test -count=1 -v -timeout 30m ./test/chaos/... || status=$?

if [ ! -s "$report" ]; then
  echo "chaos: the run wrote no report to $report; $doc is unchanged" >&2
  exit $(( status == 0 ? 1 : status ))
fi
if ! grep -q '^<!-- chaos-report:begin -->$' "$doc" || ! grep -q '^<!-- chaos-report:end -->$' "$doc"; then
  echo "chaos: $doc lacks the chaos-report markers; the report stays in $report" >&2
  exit 1
fi
tmp=$(mktemp)
awk -v report="$report" '
  /^<!-- chaos-report:begin -->$/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
  /^<!-- chaos-report:end -->$/ { skip = 0 }
  !skip { print }
' "$doc" > "$tmp"
cat "$tmp" > "$doc"
rm -f "$tmp"
echo "chaos: report of the run put into $doc (test status $status)" >&2
exit "$status"
