"""Fuzz the triage's scanning core (src/allies/triage/_logscan.c): `make fuzz`.

Builds tests/fuzz/logscan_fuzzer.c with clang's libFuzzer, AddressSanitizer and
UndefinedBehaviorSanitizer (coverage-guided: the fuzzer sees which branches of the core each input
reaches), seeds it with lines near the grammar's edges, and runs it. A crash, a sanitizer report or
a failed check stops the run and leaves the input in the working directory (the path is printed).
What the core answers is checked against Python's `re` by tests/test_triage.py (differential).

    python tests/fuzz/fuzz_logscan.py --seconds 300     (make fuzz; needs clang)
    python tests/fuzz/fuzz_logscan.py --runs 50000      (the suite's bounded run)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = [
    b'10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET /allies/1f585fc9-4926-468c-a728-eb34d80e9ea1/credentials HTTP/1.1" 404 12\n',
    b'10.0.0.1 - - [01/Mar/2026:10:00:00 - 0500] "POST /allies/x/credentials?retry=1 HTTP/1.1" 503 - 4729\n',
    b'1.2.3.4 - - [31/Dec/9998:23:59:59 +1459] "" 200 - "ref" "agent"\r\n',
    b'a b c [29/Feb/2024:00:00:60 -0000] "GET /allies/a/b?c HTTP/1.0" 500 1\ngarbage\n\n',
]
INSTALL_CLANG = "clang is not installed: `sudo apt-get install clang` (Debian/Ubuntu)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--seconds", type=int, default=300, help="How long to fuzz (default 300).")
    limit.add_argument("--runs", type=int, help="How many inputs to try instead.")
    args = parser.parse_args()
    clang = shutil.which("clang")
    if clang is None:
        sys.exit(f"fuzz: {INSTALL_CLANG}")
    work = Path(tempfile.mkdtemp(prefix="allies-fuzz-"))
    fuzzer, corpus = work / "logscan_fuzzer", work / "corpus"
    subprocess.run(
        [clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
         str(HERE / "logscan_fuzzer.c"), "-o", str(fuzzer)],
        check=True,
    )  # fmt: skip
    corpus.mkdir()
    for n, seed in enumerate(SEEDS):
        (corpus / f"seed{n}").write_bytes(bytes([n]) + seed)
    bound = f"-runs={args.runs}" if args.runs else f"-max_total_time={args.seconds}"
    run = subprocess.run([str(fuzzer), str(corpus), bound, "-max_len=4096", "-print_final_stats=1"], cwd=work)
    if run.returncode == 0:
        shutil.rmtree(work)
    else:
        print(f"fuzz: stopped with {run.returncode}; the input that did it is in {work}", file=sys.stderr)
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
