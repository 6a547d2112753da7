#!/bin/sh
# Every C++ file of the source tree is formatted as .clang-format says (Google style, 100
# columns). Fix a failure with: clang-format -i <file> (bootstrap installs clang-format).
set -eu
root=$(dirname "$(readlink -f "$TEST_SRCDIR/pact_qat/WORKSPACE")")
cd "$root"
if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format is not installed; run ./bootstrap" >&2
  exit 1
fi
files=$(find . -path ./bazel-\* -prune -o -path ./.git -prune -o -path ./build -prune -o \
  \( -name '*.cc' -o -name '*.h' \) -print | sort)
count=$(echo "$files" | wc -l)
if [ "$count" -lt 50 ]; then
  echo "found only $count C++ files under $root; the test cannot see the source tree" >&2
  exit 1
fi
if ! clang-format --dry-run -Werror $files; then
  echo "the files above are not clang-formatted; run: clang-format -i <file>" >&2
  exit 1
fi
echo "checked $count C++ files: all formatted"
