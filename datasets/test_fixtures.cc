#include "datasets/test_fixtures.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace pact::datasets::testing {
namespace {

void AppendBigEndian32(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

}  // namespace

std::string MakeTempDir(absl::string_view name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::filesystem::path dir =
      std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / std::string(name);
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  std::filesystem::create_directories(dir, error);
  EXPECT_FALSE(error) << "cannot create " << dir << ": " << error.message();
  return dir.string();
}

void WriteFileOrFail(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

std::string GzipCompress(absl::string_view data) {
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  EXPECT_EQ(deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&stream, data.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(&out[0]);
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

uint8_t FixturePixel(int64_t id, int64_t j) {
  return static_cast<uint8_t>((id * 37 + j * 11 + (j >> 7)) & 0xff);
}

uint8_t FixtureLabel(int64_t id) { return static_cast<uint8_t>((id * 7 + 3) % 10); }

std::string CifarRecords(int64_t first_id, int64_t count) {
  std::string out;
  out.reserve(count * 3073);
  for (int64_t id = first_id; id < first_id + count; ++id) {
    out.push_back(static_cast<char>(FixtureLabel(id)));
    for (int64_t j = 0; j < 3072; ++j) out.push_back(static_cast<char>(FixturePixel(id, j)));
  }
  return out;
}

std::string IdxImages(int64_t count, int64_t rows, int64_t cols, uint32_t magic) {
  std::string out;
  AppendBigEndian32(magic, &out);
  AppendBigEndian32(static_cast<uint32_t>(count), &out);
  AppendBigEndian32(static_cast<uint32_t>(rows), &out);
  AppendBigEndian32(static_cast<uint32_t>(cols), &out);
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t j = 0; j < rows * cols; ++j) out.push_back(static_cast<char>(FixturePixel(i, j)));
  }
  return out;
}

std::string IdxLabels(const std::vector<uint8_t>& labels, uint32_t magic) {
  std::string out;
  AppendBigEndian32(magic, &out);
  AppendBigEndian32(static_cast<uint32_t>(labels.size()), &out);
  out.append(labels.begin(), labels.end());
  return out;
}

std::vector<uint8_t> FixtureLabels(int64_t count) {
  std::vector<uint8_t> labels;
  for (int64_t i = 0; i < count; ++i) labels.push_back(FixtureLabel(i));
  return labels;
}

}  // namespace pact::datasets::testing
