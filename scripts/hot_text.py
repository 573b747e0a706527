#!/usr/bin/env python3
"""Writes link/hot-text.ld from callgrind traces of the release binary (scripts/hot_text.sh).

Why: the release iicp-node has ~11 MiB of code and a process runs ~2 MiB of it, spread over
the whole file. The kernel maps file pages 64 KiB at a time around each fault ("fault
around"), so an idle node keeps most of its .text resident. The linker script this writes
puts every function a traced process ran into one output section, .text.hot, ahead of the
rest: the pages a node touches become contiguous and the idle RSS drops by the difference.

The traces name functions by their v0-mangled symbols (.cargo/config.toml selects v0).
What differs from build to build is turned into `*`, so the script keeps matching after a
version bump, a new Cargo.lock or a new toolchain, and only a renamed or new function
falls out of the hot section until the next regeneration:
- crate hashes (`Cs<hash>_`) and the back-references whose offsets follow their length
  (`B<offset>_`);
- the crate that instantiated a generic function (a trailing `Cs<hash>_<name>` or `B<n>_`):
  which crate's copy survives LTO changes from build to build;
- LLVM's numbered suffixes on local symbols (`.llvm.<n>`, `.<n>`).
rustc also merges functions with identical code, so a traced name may be an alias of a body
whose section is named after another: every name at the traced address is included. A
function LLVM deems cold (`#[cold]`, e.g. `RawVec::finish_grow`) sits in a
`.text.unlikely.<symbol>` section and a C constructor (mimalloc's) in
`.text.startup.<symbol>`, so each pattern names all three section forms.

Order of the hot section: the functions every traced process ran (start-up, runtime, HTTP),
those every node ran, those some nodes ran (per backend), then those only the directory
ran, each group sorted: a node touches one contiguous range (plus its backend's few
functions), and a diff of the file shows what changed.

    scripts/hot_text.py OUT.ld --binary TRACED-BIN --directory DIR.callgrind \
        --node NODE.callgrind [--node ...]
"""

import argparse
import os
import re
import subprocess
import sys

NAME = re.compile(r"c?fn=\(\d+\) (.+)$")

# Code picked at run time by a CPU feature valgrind does not offer (SHA-NI), so the traces
# show its fallback: these patterns join what every process ran.
NATIVE_ONLY = ["_RNvNtNtCs*_4sha26sha2567x86_sha8compress*"]


def functions(path):
    """The names of every function a callgrind output file saw run (callers and callees)."""
    names = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = NAME.match(line.rstrip("\n"))
            if m:
                names.add(m.group(1))
    return names


def aliases(binary):
    """Each function symbol of `binary` -> every symbol at its address. rustc merges
    functions with identical code into aliases of one body, whose section is named after
    only one of them, and callgrind may report any of the names."""
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True)
    by_addr, addr_of = {}, {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            by_addr.setdefault(parts[0], []).append(parts[2])
            addr_of[parts[2]] = parts[0]
    return {name: by_addr[addr] for name, addr in addr_of.items()}


def pattern(symbol):
    """A glob for one symbol's name, or None for what is not a named function."""
    if symbol.startswith("0x") or " " in symbol or "(" in symbol:
        return None  # callgrind's names for unnamed code and "(below main)"
    if any(c in symbol for c in "*?[]\\\"'"):
        return None  # would need quoting; no v0 or C symbol has these
    if symbol.startswith("_R"):
        symbol = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", symbol)
        symbol = re.sub(r"B[0-9A-Za-z]*_", "B*_", symbol)
        symbol = without_instantiating_crate(symbol)
    elif symbol.startswith("_ZN"):
        symbol = re.sub(r"17h[0-9a-f]{16}E", "17h*E", symbol)
    symbol = re.sub(r"\.llvm\.\d+", ".llvm.*", symbol)
    symbol = re.sub(r"\.\d+$", ".*", symbol)
    return symbol


def without_instantiating_crate(symbol):
    """A v0 symbol of generic code ends with the crate that instantiated it (`Cs*_4axum`,
    or a back-reference `B*_`), and which crate's copy survives LTO differs from build to
    build: that suffix becomes `*`. A path never ends with a crate root, so a trailing
    `Cs*_<len><name>` whose length is exactly the rest is that suffix."""
    if symbol.endswith("B*_"):
        return symbol[: -len("B*_")] + "*"
    m = re.search(r"Cs\*_(\d+)([0-9A-Za-z_]+)$", symbol)
    if m and int(m.group(1)) == len(m.group(2)):
        return symbol[: m.start()] + "*"
    return symbol


def patterns(names):
    return sorted({p for p in map(pattern, names) if p})


def grouped(traces):
    """The traced functions in groups by which processes ran them, each group's patterns
    sorted: what every process ran, what every node ran, what some nodes ran (one group
    per combination), then what only the directory ran. (The directory's group first
    would make both ranges contiguous, but measured worse: a function a traced node
    happened not to run then sits apart from the node's range.)"""
    everyone = set.intersection(*(names for _, names in traces))
    nodes = [(label, names) for label, names in traces if label != "directory"]
    every_node = set.intersection(*(names for _, names in nodes)) - everyone
    by_nodes = {}
    for name in set.union(*(names for _, names in nodes)) - everyone - every_node:
        key = tuple(label for label, names in nodes if name in names)
        by_nodes.setdefault(key, set()).add(name)
    directory_only = set.union(*(n for label, n in traces if label == "directory"))
    directory_only -= set.union(*(names for _, names in nodes))
    groups = [("run by every traced process", everyone), ("run by every node", every_node)]
    for key in sorted(by_nodes, key=lambda k: (-len(k), k)):
        groups.append((f"run by {', '.join(key)} only", by_nodes[key]))
    groups.append(("run by the directory only", directory_only))
    out = [(title, patterns(names)) for title, names in groups]
    out[0] = (out[0][0], sorted(set(out[0][1]).union(NATIVE_ONLY)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--directory", action="append", required=True)
    ap.add_argument("--node", action="append", required=True)
    ap.add_argument("--binary", required=True, help="the traced iicp-node")
    args = ap.parse_args()

    alias = aliases(args.binary)

    def traced(path):
        names = functions(path)
        return names.union(*(alias[n] for n in names if n in alias))

    traces = [("directory", traced(p)) for p in args.directory]
    traces += [(os.path.basename(p).split(".")[0], traced(p)) for p in args.node]
    groups = grouped(traces)
    seen = set()
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(
            "/* Generated by scripts/hot_text.sh: do not edit. The functions traced runs of the\n"
            "   release iicp-node executed, laid out together ahead of the rest of .text\n"
            "   (scripts/hot_text.py says why; build.rs says when it is used). */\n"
            "SECTIONS\n{\n  .text.hot :\n  {\n"
        )
        for title, pats in groups:
            out.write(f"    /* {title} */\n")
            for p in pats:
                if p not in seen:
                    seen.add(p)
                    out.write(f"    *(.text.{p} .text.unlikely.{p} .text.startup.{p})\n")
        out.write("  }\n}\nINSERT BEFORE .text;\n")
    counts = ", ".join(f"{len(p)} {t}" for t, p in groups)
    print(f"hot_text: {len(seen)} patterns ({counts}) -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
