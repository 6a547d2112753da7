#!/bin/sh
# The CMake build (CMakeLists.txt) compiles what the BUILD.bazel files list: every .cc and .proto
# named in a BUILD.bazel file is in cmake/bazel_targets.cmake and nothing else is. On a failure,
# regenerate the CMake list (see cmake/gen_targets.py).
set -eu
root=$(dirname "$(readlink -f "$TEST_SRCDIR/pact_qat/WORKSPACE")")
exec python3 - "$root" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
skip = {".git", "build", "third_party"}
bazel = set()
builds = 0
for build in sorted(root.rglob("BUILD.bazel")):
    parts = build.relative_to(root).parts
    if parts[0].startswith("bazel-") or parts[0] in skip:
        continue
    builds += 1
    package = build.parent.relative_to(root).as_posix()
    for name in re.findall(r'"([A-Za-z0-9_./-]+\.(?:cc|proto))"', build.read_text()):
        bazel.add(name if package == "." else f"{package}/{name}")
cmake = set(re.findall(r"([A-Za-z0-9_./-]+\.(?:cc|proto))\b",
                       (root / "cmake" / "bazel_targets.cmake").read_text()))
if builds < 10:
    sys.exit(f"found only {builds} BUILD.bazel files under {root}: the test cannot see the tree")
only_bazel, only_cmake = sorted(bazel - cmake), sorted(cmake - bazel)
if only_bazel or only_cmake:
    print("the CMake and Bazel builds disagree on what is compiled;")
    print("  in BUILD.bazel only:", " ".join(only_bazel) or "-")
    print("  in cmake/bazel_targets.cmake only:", " ".join(only_cmake) or "-")
    print("regenerate: bazel query 'kind(\"cc_(library|binary|test)|proto_library\", //...)' "
          "--output=xml | python3 cmake/gen_targets.py > cmake/bazel_targets.cmake")
    sys.exit(1)
print(f"{len(bazel)} sources in {builds} BUILD.bazel files: the CMake build compiles the same")
PY
