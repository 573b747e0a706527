#!/usr/bin/env python3
"""Checks that fuzz/Cargo.lock builds the mounted files with the crates the
main crate ships with: every package both lock files hold must be at a
version the main Cargo.lock also has.

    python3 fuzz/lockstep.py

Exits 1 and names each package that differs, with the command that fixes it
(cargo update --precise, run in fuzz/). Standard library only.
"""

import re
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
PACKAGE = re.compile(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"\n(?:source = "([^"]+)")?')


def versions(lock):
    found = {}
    for name, version, source in PACKAGE.findall(lock.read_text()):
        if source:  # path packages (the crates themselves, the shims) have none
            found.setdefault(name, set()).add(version)
    return found


def main():
    main_lock = versions(FUZZ.parent / "Cargo.lock")
    fuzz_lock = versions(FUZZ / "Cargo.lock")
    wrong = []
    for name, fuzz_versions in sorted(fuzz_lock.items()):
        shipped = main_lock.get(name)
        if shipped is None:
            continue  # the fuzzing machinery (libfuzzer-sys, arbitrary, …)
        for version in sorted(fuzz_versions - shipped):
            wrong.append(f"{name} {version} (main crate: {', '.join(sorted(shipped))})")
    if wrong:
        print("fuzz/Cargo.lock is out of step with Cargo.lock:")
        for line in wrong:
            print(f"  {line}")
        print("fix in fuzz/: cargo update -p <name>@<version> --precise <main crate's version>")
        sys.exit(1)
    shared = len(set(fuzz_lock) & set(main_lock))
    print(f"fuzz/Cargo.lock: {shared} packages, all at the main crate's versions")


if __name__ == "__main__":
    main()
