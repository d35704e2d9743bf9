#!/usr/bin/env bash
# Whole-process daemon timings (issue 14), hyperfine -N medians and ratios in one run:
#   A. `ast symbols --daemon auto` through a running daemon vs a local warm hit (--daemon never)
#   B. a local warm hit while the daemon watches the segment vs with no daemon at all
#   C. `--daemon auto` with no daemon running (one failed connect) vs `--daemon never`
# On typing.py from the machine's stdlib (~3,500 lines), persistent cache, telemetry off.
#
# Usage: benches/daemon.sh [RUNS]   (default 300). Needs hyperfine, python3. Builds release,
# unless TRIFECTA_BIN names the binary to measure.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
command -v hyperfine >/dev/null || { echo "missing hyperfine (apt-get install -y hyperfine)" >&2; exit 2; }
if [ -z "${TRIFECTA_BIN:-}" ]; then
  cargo build --release --locked --bin trifecta >/dev/null 2>&1 || cargo build --release --bin trifecta
fi
bin=${TRIFECTA_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/trifecta}
work=$(mktemp -d /tmp/trifecta-daemon-bench.XXXXXX)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
seg=$work/seg
mkdir -p "$seg"
cp "$(python3 -c 'import typing; print(typing.__file__)')" "$seg/typing_mod.py"
cleanup() { "$bin" daemon stop --segment "$seg" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
unset TRIFECTA_TELEMETRY TRIFECTA_DAEMON TRIFECTA_BIN
q="$bin ast symbols sym://python/mod/typing_mod --segment $seg --persist-cache"
$q --daemon never >/dev/null   # warm the cache
# Per command: median wall ms, then mean user+system CPU ms (steadier on a busy machine).
median() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join(f\"{x['median']*1000} {(x['user']+x['system'])*1000}\" for x in r))" "$1"; }

# C and the no-daemon half of B first, while no daemon runs.
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/c.json" \
  -n "never (no daemon)" "$q --daemon never" -n "auto (no daemon)" "$q --daemon auto" >/dev/null
read -r never_nod never_nod_cpu auto_nod auto_nod_cpu < <(median "$work/c.json")

"$bin" daemon start --segment "$seg" >/dev/null
$q --daemon require >/dev/null   # warm the daemon's memory tier
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/ab.json" \
  -n "auto via daemon" "$q --daemon auto" -n "never (daemon watching)" "$q --daemon never" >/dev/null
read -r via_daemon via_daemon_cpu never_watch never_watch_cpu < <(median "$work/ab.json")

python3 - "$never_nod" "$never_nod_cpu" "$auto_nod" "$auto_nod_cpu" "$via_daemon" "$via_daemon_cpu" "$never_watch" "$never_watch_cpu" <<'PY'
import sys
nn, nnc, an, anc, via, viac, nw, nwc = map(float, sys.argv[1:])
print("| comparison | median ms | baseline median ms | ratio | CPU ms (user+sys) | baseline CPU ms | CPU ratio |")
print("|---|---|---|---|---|---|---|")
def row(name, a, b, ac, bc):
    print(f"| {name} | {a:.3f} | {b:.3f} | {a/b:.2f} | {ac:.3f} | {bc:.3f} | {ac/bc:.2f} |")
row("A. --daemon auto through the daemon vs local warm hit (daemon running)", via, nw, viac, nwc)
row("B. local warm hit, daemon watching vs no daemon", nw, nn, nwc, nnc)
row("C. --daemon auto vs never, no daemon (one failed connect)", an, nn, anc, nnc)
PY
