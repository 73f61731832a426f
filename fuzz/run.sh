#!/bin/sh
# Runs pyexec's libFuzzer targets for a while each, starting from a copy of
# the seed corpus so the source tree is never written to.
#   fuzz/run.sh BUILDDIR SECONDS [TARGET...]
# TARGET is fuzz_names or names; none = every target. One line per target;
# crash, leak and timeout inputs are kept in BUILDDIR/fuzz-artifacts, whole
# logs in BUILDDIR/fuzz-logs. Exits 1 when any target failed.
set -u

usage() {
	echo "usage: $0 BUILDDIR SECONDS [TARGET...]" >&2
	exit 2
}

[ $# -ge 2 ] || usage
builddir=$1
seconds=$2
shift 2
case $seconds in
'' | *[!0-9]*) usage ;;
esac
[ -d "$builddir" ] || { echo "$0: $builddir: no such directory" >&2; exit 2; }

srcdir=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- multipart names deps query conf argenv

artifacts=$builddir/fuzz-artifacts
logs=$builddir/fuzz-logs
mkdir -p "$artifacts" "$logs" || exit 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pyexec-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

failed=0
for t in "$@"; do
	t=fuzz_${t#fuzz_}
	bin=$builddir/$t
	log=$logs/$t.log
	if [ ! -x "$bin" ]; then
		echo "$t: not built ($bin)"
		failed=1
		continue
	fi
	corpus=$tmp/$t
	mkdir -p "$corpus"
	if [ -d "$srcdir/corpus/$t" ]; then
		cp "$srcdir/corpus/$t"/* "$corpus"/ 2>/dev/null
	fi
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
		"$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "$t: ok, ${runs:-?} runs"
	else
		artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
		echo "$t: CRASH (artifact at ${artifact:-none, exit $rc; see $log})"
		failed=1
	fi
done
exit "$failed"
