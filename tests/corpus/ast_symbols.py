#!/usr/bin/env python3
"""Ground truth for trifecta's symbol extractor: Python's own `ast`.

Usage: ast_symbols.py [--exclude-dir NAME]... PATH...

Each PATH is a .py file or a directory (searched recursively for *.py, in sorted order; a
directory named by --exclude-dir is skipped wherever it occurs). For every file that
`ast.parse(open(f, 'rb').read())` accepts, prints one JSON line

    {"path": "<path as found>", "symbols": [...], "compiles": true|false}

where each symbol has exactly trifecta's JSON shape: kind, name, line, end_line, then "async":
true only for `async def`, then "members" only on classes (direct methods and nested classes,
recursively). Files `ast` rejects (SyntaxError, NUL bytes, recursion limits, unreadable) are
skipped; each is named on stderr as "rejected <ExceptionType> <path>", then their count as
"skipped N". "compiles" is false for the few files
the parser accepts but the compiler rejects (e.g. `from __future__ import *`): those are
syntax errors to Python too, just raised one stage later.
"""

import argparse
import ast
import json
import os
import sys
import warnings

DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def symbol(node):
    """One definition node as trifecta's JSON object."""
    out = {
        "kind": "class" if isinstance(node, ast.ClassDef) else "function",
        "name": node.name,
        "line": node.lineno,
        "end_line": node.end_lineno,
    }
    if isinstance(node, ast.AsyncFunctionDef):
        out["async"] = True
    if isinstance(node, ast.ClassDef):
        out["members"] = [symbol(m) for m in node.body if isinstance(m, DEFS)]
    return out


def iter_files(paths, excluded):
    for path in paths:
        if os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if d not in excluded)
                for name in sorted(filenames):
                    if name.endswith(".py"):
                        yield os.path.join(dirpath, name)
        else:
            yield path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exclude-dir", action="append", default=[])
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    # Invalid escape sequences and the like warn on stderr; they are not our business.
    warnings.simplefilter("ignore")
    sys.setrecursionlimit(10000)
    skipped = 0
    # Names may be non-ASCII; emit UTF-8 whatever the locale says.
    sys.stdout.reconfigure(encoding="utf-8")
    out = sys.stdout
    for path in iter_files(args.paths, set(args.exclude_dir)):
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, ValueError, RecursionError, MemoryError, OSError) as e:
            skipped += 1
            print(f"rejected {type(e).__name__} {path}", file=sys.stderr)
            continue
        symbols = [symbol(n) for n in tree.body if isinstance(n, DEFS)]
        try:
            compile(tree, path, "exec")
            compiles = True
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            compiles = False
        record = {"path": path, "symbols": symbols, "compiles": compiles}
        out.write(json.dumps(record, ensure_ascii=False))
        out.write("\n")
    print(f"skipped {skipped}", file=sys.stderr)


if __name__ == "__main__":
    main()
