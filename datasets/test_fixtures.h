// Generated dataset files for tests: CIFAR-10 .bin records, (gzip) IDX files and .tar.gz archives,
// to write into folders from pact::testing::TestTempDir. Pixel values are a known function of
// (record id, byte), so tests can check values exactly.
#ifndef PACT_DATASETS_TEST_FIXTURES_H_
#define PACT_DATASETS_TEST_FIXTURES_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace pact::datasets::testing {

// Writes `contents` to `path`, failing the test (ADD_FAILURE) on error.
void WriteFileOrFail(const std::string& path, absl::string_view contents);

// gzip-compresses `data` (one member, as gzip(1) writes).
std::string GzipCompress(absl::string_view data);

// Byte `j` of the image of fixture record `id`.
uint8_t FixturePixel(int64_t id, int64_t j);
// The label of fixture record `id` (0..9).
uint8_t FixtureLabel(int64_t id);

// CIFAR-10 records [first_id, first_id + count): label FixtureLabel(id), image bytes
// FixturePixel(id, 0..3071).
std::string CifarRecords(int64_t first_id, int64_t count);

// An IDX3 image file (uncompressed) of `count` images rows x cols, bytes FixturePixel(i, j),
// with the given magic number.
std::string IdxImages(int64_t count, int64_t rows, int64_t cols, uint32_t magic = 2051);
// An IDX1 label file (uncompressed) of `labels`, with the given magic number.
std::string IdxLabels(const std::vector<uint8_t>& labels, uint32_t magic = 2049);
// FixtureLabel(0..count-1).
std::vector<uint8_t> FixtureLabels(int64_t count);

// One entry of a fixture archive: a regular file, a folder, or a symlink.
struct ArchiveEntry {
  static ArchiveEntry File(std::string path, std::string contents) {
    return {std::move(path), std::move(contents), false, ""};
  }
  static ArchiveEntry Folder(std::string path) { return {std::move(path), "", true, ""}; }
  static ArchiveEntry Symlink(std::string path, std::string target) {
    return {std::move(path), "", false, std::move(target)};
  }
  std::string path;
  std::string contents;
  bool directory = false;
  std::string symlink_target;  // non-empty: a symlink
};

// A .tar.gz (ustar) of `entries`, written with libarchive.
std::string MakeTarGz(const std::vector<ArchiveEntry>& entries);

// Sets or unsets environment variables for one test and restores them when destroyed.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv();
  void Set(const char* name, const std::string& value);
  void Unset(const char* name);

 private:
  struct Saved {
    bool present = false;
    std::string value;
  };
  void Save(const char* name);
  std::map<std::string, Saved> saved_;
};

}  // namespace pact::datasets::testing

#endif  // PACT_DATASETS_TEST_FIXTURES_H_
