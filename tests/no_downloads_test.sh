#!/bin/sh
# The build must never download: no repository rule that fetches may appear in a WORKSPACE,
# BUILD or Starlark file of the source tree. (The pattern is split so this file does not
# match itself.)
set -eu
root=$(dirname "$(readlink -f "$TEST_SRCDIR/pact_qat/WORKSPACE")")
cd "$root"
fetchers="http_""archive|git_""repository|http_""file|new_git_""repository|http_""jar|download_and_""extract|ctx\.down""load"
files=$(find . -path ./bazel-\* -prune -o -path ./.git -prune -o \
  \( -name WORKSPACE -o -name '*.bzl' -o -name BUILD -o -name BUILD.bazel -o -name '*.BUILD' -o -name .bazelrc \) -print)
count=$(echo "$files" | wc -l)
if [ "$count" -lt 10 ]; then
  echo "found only $count build files under $root; the test cannot see the source tree" >&2
  exit 1
fi
found=$(grep -lE "$fetchers" $files || true)
if [ -n "$found" ]; then
  echo "forbidden download rules in:" $found >&2
  grep -nE "$fetchers" $found >&2
  exit 1
fi
echo "checked $count build files: no download rules"
