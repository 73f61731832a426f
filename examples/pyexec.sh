#!/bin/sh
# pyexec.sh: run main.py (and helper files) on a pyexec server with curl.
#
#   examples/pyexec.sh [-u URL] [-t TOKEN] [-d DEPS] [-s SECONDS] [-m MIB] [-p PYTHON]
#                      [-i STDIN_FILE] [-a ARG]... [-e NAME=VALUE]... [-o DIR] main.py [files...]
#
#   -u URL      the execute URL (default $PYEXEC_URL or http://127.0.0.1:8000/execute)
#   -t TOKEN    bearer token (default $PYEXEC_TOKEN; it reaches curl in a file,
#               not on its command line)
#   -d DEPS     pip requirements, comma-separated (requests,numpy==1.26.*)
#   -s SECONDS  wall-clock limit of the run;  -m MIB  its memory
#   -p PYTHON   the interpreter, by its name on the server (default: its default)
#   -i FILE     the program's standard input
#   -a ARG      an argument of the program (sys.argv[1:]), repeatable
#   -e N=V      a variable of the program's environment, repeatable
#   -o DIR      save the generated files in DIR (default: not saved)
#
# The first file is sent as main.py; the others keep the path given when it
# is relative (pkg/util.py), else their base name. It asks for the JSON form
# (Accept: application/json), prints the program's stdout and stderr with a
# one-line python3, and exits with X-Exit-Code, read from the headers (curl
# -D). Otherwise: 124 when the run hit its time limit (as timeout(1)),
# 128+N when signal N ended it, 125 when pyexec did not run it (an error
# reply, whose "detail" goes to stderr, or no connection), 2 for bad usage.
# Needs curl and python3.

set -u

url=${PYEXEC_URL:-http://127.0.0.1:8000/execute}
token=${PYEXEC_TOKEN:-}
deps= seconds= memory= python= stdin= outdir= nargs=0 nenv=0

usage() {
	printf 'usage: ' >&2
	sed -n '4,5p' "$0" | sed 's/^#  *//' >&2
	echo "(the options are described at the top of $0)" >&2
	exit 2
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pyexec-sh.XXXXXX") || exit 125
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
: >"$tmp/args"
: >"$tmp/env"

while getopts u:t:d:s:m:p:i:a:e:o:h opt; do
	case $opt in
	u) url=$OPTARG ;;
	t) token=$OPTARG ;;
	d) deps=$OPTARG ;;
	s) seconds=$OPTARG ;;
	m) memory=$OPTARG ;;
	p) python=$OPTARG ;;
	i) stdin=$OPTARG ;;
	o) outdir=$OPTARG ;;
	# NUL-separated: a value may hold any other byte
	a) printf '%s\0' "$OPTARG" >>"$tmp/args"; nargs=$((nargs + 1)) ;;
	e)
		case $OPTARG in
		*=*) printf '%s\0' "$OPTARG" >>"$tmp/env"; nenv=$((nenv + 1)) ;;
		*) echo "pyexec.sh: -e $OPTARG: give NAME=VALUE" >&2; exit 2 ;;
		esac ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage

# A value inside -F's double quotes: backslash and '"' escaped.
quote() {
	printf '%s' "$1" | sed 's/[\\"]/\\&/g'
}

first=1
for f in "$@"; do
	if [ ! -r "$f" ]; then
		echo "pyexec.sh: cannot read $f" >&2
		exit 2
	fi
	if [ $first = 1 ]; then
		name=main.py
		first=0
	else
		case $f in
		/* | .. | ../* | */../* | */..) name=$(basename "$f") ;;
		./*) name=${f#./} ;;
		*) name=$f ;;
		esac
	fi
	printf -- '-F\nfiles=@"%s";filename="%s"\n' "$(quote "$f")" "$(quote "$name")" >>"$tmp/form"
done
if [ -n "$stdin" ]; then
	printf -- '-F\nstdin=<"%s"\n' "$(quote "$stdin")" >>"$tmp/form"
fi
# args and env: JSON, made by python3 from the NUL-separated values
if [ $nargs -gt 0 ]; then
	python3 -c 'import json, sys
print(json.dumps([a.decode("utf-8", "surrogateescape") for a in
                  open(sys.argv[1], "rb").read().split(b"\0")[:-1]]))' "$tmp/args" >"$tmp/args.json" ||
		exit 2
	printf -- '-F\nargs=<"%s"\n' "$(quote "$tmp/args.json")" >>"$tmp/form"
fi
if [ $nenv -gt 0 ]; then
	python3 -c 'import json, sys
print(json.dumps(dict(e.decode("utf-8", "surrogateescape").split("=", 1) for e in
                      open(sys.argv[1], "rb").read().split(b"\0")[:-1])))' "$tmp/env" >"$tmp/env.json" ||
		exit 2
	printf -- '-F\nenv=<"%s"\n' "$(quote "$tmp/env.json")" >>"$tmp/form"
fi

# The query: curl --data-urlencode would make a GET or a body; -G cannot
# mix with -F, so encode it here.
query=format=json
enc() {
	python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=","))' "$1"
}
[ -n "$deps" ] && query="$query&dependencies=$(enc "$deps")"
[ -n "$seconds" ] && query="$query&timeout=$(enc "$seconds")"
[ -n "$memory" ] && query="$query&memory=$(enc "$memory")"
[ -n "$python" ] && query="$query&python=$(enc "$python")"
case $url in *\?*) sep='&' ;; *) sep='?' ;; esac

: >"$tmp/auth"
chmod 600 "$tmp/auth"
[ -n "$token" ] && printf 'Authorization: Bearer %s\n' "$token" >"$tmp/auth"

# The -F arguments go through the positional parameters (one per line in
# the form file), so names with spaces survive.
set --
while IFS= read -r line; do
	set -- "$@" "$line"
done <"$tmp/form"

curl -sS -X POST -D "$tmp/headers" -o "$tmp/body" \
	-H 'Accept: application/json' -H 'Expect:' -H "@$tmp/auth" \
	"$@" "$url$sep$query"
rc=$?
if [ $rc -ne 0 ]; then
	echo "pyexec.sh: curl failed ($rc)" >&2
	exit 125
fi

# The last header block (after any 100 Continue): its status and fields.
header() {
	tr -d '\r' <"$tmp/headers" | awk -v want="$1" '
		/^HTTP\// { v = "" }
		tolower($0) ~ "^" tolower(want) ":" { sub(/^[^:]*:[ \t]*/, ""); v = $0 }
		END { print v }'
}
http=$(tr -d '\r' <"$tmp/headers" | awk '/^HTTP\// { s = $2 } END { print s }')
status=$(header X-Execution-Status)
code=$(header X-Exit-Code)
sig=$(header X-Signal)

# Print stdout and stderr (and save the files with -o) from the JSON body;
# an error reply's detail goes to stderr.
python3 -c '
import base64, json, os, sys
body, out, http = sys.argv[1:]
raw = open(body, "rb").read()
try:
    doc = json.loads(raw.decode("utf-8"))
except ValueError:
    doc = {"detail": raw.decode("utf-8", "replace").strip()[:500], "error": None}
if "status" not in doc:
    sys.stderr.write("pyexec.sh: HTTP %s (%s): %s\n" % (http, doc.get("error"), doc.get("detail")))
    sys.exit(0)
def raw(text, encoding):
    return base64.b64decode(text) if encoding == "base64" else text.encode()
sys.stdout.buffer.write(raw(doc["stdout"], doc.get("stdout_encoding"))); sys.stdout.flush()
sys.stderr.buffer.write(raw(doc["stderr"], doc.get("stderr_encoding"))); sys.stderr.flush()
for f in doc["files"] if out else []:
    # a name that is not UTF-8 comes whole in name_b64
    name = base64.b64decode(f["name_b64"]) if "name_b64" in f else f["name"].encode()
    parts = name.split(b"/")
    if name.startswith(b"/") or any(p in (b"", b".", b"..") for p in parts):
        continue
    path = os.path.join(out.encode(), *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = raw(f["content"], f["encoding"])
    with open(path, "wb") as fh:
        fh.write(data)
' "$tmp/body" "$outdir" "$http" || exit 125

case $status in
timeout) exit 124 ;;
dependency_error | "") exit 125 ;;
esac
[ -n "$code" ] && exit "$code"
if [ -n "$sig" ]; then
	n=$(python3 -c 'import signal, sys; print(int(signal.Signals[sys.argv[1]]))' "$sig" \
		2>/dev/null) || n=9
	exit $((128 + n))
fi
exit 125
