#!/usr/bin/env bash
# Side-by-side performance record (issue 5). In one run, on one corpus copy, measures:
#   trifecta ast index (SQLite) cold and warm, universal-ctags, Python's ast over the same files,
#   and whole-process `ast symbols` warm hit / cold miss on a ~3,500-line module (typing.py).
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
bin=$PWD/target/release/trifecta
work=$(mktemp -d /tmp/trifecta-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
MD
