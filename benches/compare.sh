#!/usr/bin/env bash
# Side-by-side performance record (issue 5). In one run, on one corpus copy, measures:
#   trifecta ast index (SQLite) cold and warm, universal-ctags, Python's ast over the same files,
#   and whole-process `ast symbols` warm hit / cold miss on a ~3,500-line module (typing.py).
#   With redis-server installed, also the shared remote tier (issue 12): a fresh checkout's index
#   from a warm Redis, an L2 hit against an L1 hit, an L1 hit with and without a remote
#   configured, and what a dead remote costs a process (refused, and a silent server).
# Prints medians (hyperfine) and ratios as a Markdown table, plus peak RSS and DB size.
#
# Usage: benches/compare.sh [CORPUS_DIR] [RUNS]
#   CORPUS_DIR defaults to the machine's Python library (stdlib + site-packages).
# Needs: hyperfine, universal-ctags (ctags), python3, /usr/bin/time (Debian: apt-get install -y
# hyperfine universal-ctags time). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-$(python3 -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")}
runs=${2:-5}
for tool in hyperfine ctags python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hyperfine universal-ctags time)" >&2; exit 2; }
done
# The static release build CI gates (.cargo/config.toml: build-static).
cargo build-static >/dev/null 2>&1
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/trifecta
work=$(mktemp -d /tmp/trifecta-bench.XXXXXX)
redis_pid=
# Only the server this script started is stopped, by its pid.
trap '[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
corpus=$work/corpus
mkdir -p "$corpus"
# Copy only the .py files, keeping the tree (the index writes .trifecta/ into the segment).
(cd "$src" && find . -name '*.py' -type f -print0 | xargs -0 cp --parents -t "$corpus")
files=$(find "$corpus" -name '*.py' -type f | wc -l)
mb=$(find "$corpus" -name '*.py' -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)
echo "corpus: $src -> $files files, $((mb / 1000000)) MB"

cat > "$work/ast_all.py" <<'PY'
import ast, os, sys
n = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        if f.endswith(".py"):
            try:
                ast.parse(open(os.path.join(d, f), "rb").read()); n += 1
            except (SyntaxError, ValueError, RecursionError):
                pass
PY
mkdir -p "$work/seg/pkg"
cp "$src/typing.py" "$work/seg/pkg/big.py"

hf() { hyperfine --style none --export-json "$work/$1.json" "${@:2}" >/dev/null 2>&1; python3 -c "
import json,sys; r=json.load(open('$work/$1.json'))['results'][0]; print(f\"{r['median']*1000:.2f}\")"; }

index_cold=$(hf index_cold --runs "$runs" --prepare "rm -rf $corpus/.trifecta" \
  "$bin ast index --persist-cache --segment $corpus")
"$bin" ast index --persist-cache --segment "$corpus" >/dev/null
index_warm=$(hf index_warm --warmup 1 --runs "$runs" "$bin ast index --persist-cache --segment $corpus")
ctags_ms=$(hf ctags --runs "$runs" "ctags -R --languages=Python -f $work/tags $corpus")
ast_ms=$(hf pyast --runs "$runs" "python3 $work/ast_all.py $corpus")
warm_hit=$(hf warm_hit --warmup 3 --runs 50 -N "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache" 2>/dev/null \
  || hf warm_hit --warmup 3 --runs 50 "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
true_ms=$(hf bare_true --warmup 20 --runs 300 -N true)
version_ms=$(hf version --warmup 20 --runs 300 -N "$bin --version")
warm_hit_lite=$(hf warm_hit_lite --warmup 3 --runs 50 "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache --telemetry lite")
cold_miss=$(hf cold_miss --runs 30 --prepare "rm -rf $work/seg/.trifecta" \
  "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")

rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
rm -rf "$corpus/.trifecta"
rss_cold=$(rss "$bin" ast index --persist-cache --segment "$corpus")
rss_warm=$(rss "$bin" ast index --persist-cache --segment "$corpus")
db_bytes=$(du -cb "$corpus/.trifecta/cache/"ast_cache.db* | tail -1 | cut -f1)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
# Two commands in one hyperfine run (alternating load hits both alike): "median1 median2".
hf2() { hyperfine --style none --export-json "$work/$1.json" "${@:2}" >/dev/null 2>&1; python3 -c "
import json; r=json.load(open('$work/$1.json'))['results']; print(' '.join(f\"{x['median']*1000:.2f}\" for x in r))"; }

remote_md=""
if command -v redis-server >/dev/null; then
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  redis_pid=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
  url=redis://127.0.0.1:$port/0
  # Warm the server from one checkout, then index a "fresh checkout" (no local cache) from it.
  rm -rf "$corpus/.trifecta"
  TRIFECTA_AST_REMOTE=$url "$bin" ast index --persist-cache --segment "$corpus" >/dev/null
  export TRIFECTA_AST_REMOTE=$url
  index_l2=$(hf index_l2 --runs "$runs" --prepare "rm -rf $corpus/.trifecta" \
    "$bin ast index --persist-cache --segment $corpus")
  # typing.py from Redis into a local cache that exists but lacks it (key_miss, then backfill),
  # and into a checkout with no local cache at all (the DB is created first).
  echo 'def small(): pass' > "$work/seg/pkg/small.py"
  "$bin" ast symbols sym://python/mod/pkg.big --segment "$work/seg" --persist-cache >/dev/null
  l2_hit=$(hf l2_hit --warmup 3 --runs 30 \
    --prepare "rm -rf $work/seg/.trifecta && $bin ast symbols sym://python/mod/pkg.small --segment $work/seg --persist-cache" \
    "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
  l2_hit_fresh=$(hf l2_hit_fresh --warmup 3 --runs 30 --prepare "rm -rf $work/seg/.trifecta" \
    "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
  # The same without a local store at all: the Redis round trip plus the record check.
  l2_hit_mem=$(hf l2_hit_mem --warmup 3 --runs 50 -N "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --no-persist-cache")
  "$bin" ast symbols sym://python/mod/pkg.big --segment "$work/seg" --persist-cache >/dev/null
  unset TRIFECTA_AST_REMOTE
  # With and without a remote in one hyperfine run, both through `env` (same exec cost).
  read -r l1_hit_remote l1_hit_plain < <(hf2 l1_pair --warmup 5 --runs 100 -N \
    "env TRIFECTA_AST_REMOTE=$url $bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache" \
    "env $bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
  read -r version_remote version < <(hf2 version_pair --warmup 20 --runs 300 -N \
    "env TRIFECTA_AST_REMOTE=$url $bin --version" "env $bin --version")
  # A dead remote: a closed port (refused at once) and a server that accepts and never answers
  # (the I/O timeout, default 500 ms). Each process pays at most one of these, then L1 only.
  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=
  miss_plain=$(hf miss_plain --runs 20 --prepare "rm -rf $work/seg/.trifecta" \
    "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
  export TRIFECTA_AST_REMOTE=$url
  miss_refused=$(hf miss_refused --runs 20 --prepare "rm -rf $work/seg/.trifecta" \
    "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
  index_refused=$(hf index_refused --runs "$runs" --prepare "rm -rf $corpus/.trifecta" \
    "$bin ast index --persist-cache --segment $corpus")
  python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $port)); s.listen(1024); time.sleep(3600)" &
  silent_pid=$!
  sleep 0.3
  miss_silent=$(hf miss_silent --runs 10 --prepare "rm -rf $work/seg/.trifecta" \
    "$bin ast symbols sym://python/mod/pkg.big --segment $work/seg --persist-cache")
  kill "$silent_pid"; wait "$silent_pid" 2>/dev/null || true
  unset TRIFECTA_AST_REMOTE
  remote_md="
| remote tier (redis-server on 127.0.0.1; medians) | wall ms | ratio |
|---|---:|---:|
| \`ast index\` fresh checkout, warm Redis (all L2 hits) | $index_l2 | $(ratio "$index_l2" "$ctags_ms") × ctags |
| \`ast symbols\` L2 hit (+ backfill) into a local cache without it, typing.py | $l2_hit | $(ratio "$l2_hit" "$l1_hit_plain") × L1 hit |
| \`ast symbols\` L2 hit into a fresh checkout (local DB created first) | $l2_hit_fresh | $(ratio "$l2_hit_fresh" "$l1_hit_plain") × L1 hit |
| \`ast symbols\` L2 hit, no local store (\`--no-persist-cache\`) | $l2_hit_mem | $(ratio "$l2_hit_mem" "$l1_hit_plain") × L1 hit |
| \`ast symbols\` L1 hit, remote configured (via \`env\`) | $l1_hit_remote | $(ratio "$l1_hit_remote" "$l1_hit_plain") × no remote |
| \`ast symbols\` L1 hit, no remote (via \`env\`) | $l1_hit_plain | 1.00 |
| \`trifecta --version\`, remote configured / not (via \`env\`) | $version_remote / $version | $(ratio "$version_remote" "$version") |
| \`ast symbols\` miss, dead remote (refused) | $miss_refused | +$(python3 -c "print(f'{$miss_refused-$miss_plain:.1f}')") ms vs no remote ($miss_plain) |
| \`ast symbols\` miss, silent remote (I/O timeout 500 ms) | $miss_silent | +$(python3 -c "print(f'{$miss_silent-$miss_plain:.1f}')") ms vs no remote |
| \`ast index\` cold, dead remote (refused) | $index_refused | $(ratio "$index_refused" "$index_cold") × cold without remote |
"
fi
cat <<MD

| measurement (median of $runs runs; symbols: 50) | wall ms | ratio |
|---|---:|---:|
| \`trifecta ast index\` cold (SQLite) | $index_cold | $(ratio "$index_cold" "$ctags_ms") × ctags |
| \`trifecta ast index\` warm (all hits) | $index_warm | $(ratio "$index_warm" "$ctags_ms") × ctags |
| \`ctags -R --languages=Python\` | $ctags_ms | 1.00 |
| Python \`ast.parse\` over the same files (1 process) | $ast_ms | $(ratio "$ast_ms" "$ctags_ms") × ctags |
| \`ast symbols\` warm hit, typing.py (3.5k lines) | $warm_hit | |
| \`ast symbols\` warm hit, \`--telemetry lite\` | $warm_hit_lite | $(ratio "$warm_hit_lite" "$warm_hit") × no telemetry |
| \`ast symbols\` cold miss, typing.py | $cold_miss | |
| \`trifecta --version\` (start-up) | $version_ms | $(ratio "$version_ms" "$true_ms") × \`true\` |
| \`true\` (a bare process) | $true_ms | 1.00 |

Corpus: $files files, $((mb / 1000000)) MB. Peak RSS: index cold $((rss_cold / 1024)) MiB, warm $((rss_warm / 1024)) MiB.
DB size after indexing: $((db_bytes / 1000000)) MB. Machine: $(nproc) cores; $(uname -sr).
$remote_md
MD
