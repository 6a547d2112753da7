#include "datasets/test_fixtures.h"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
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

std::string MakeTarGz(const std::vector<ArchiveEntry>& entries) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_ustar(a);
  archive_write_set_bytes_in_last_block(a, 1);
  const auto write = [](archive*, void* user, const void* data, size_t size) -> la_ssize_t {
    static_cast<std::string*>(user)->append(static_cast<const char*>(data), size);
    return static_cast<la_ssize_t>(size);
  };
  EXPECT_EQ(archive_write_open(a, &out, nullptr, write, nullptr), ARCHIVE_OK)
      << archive_error_string(a);
  for (const ArchiveEntry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    if (e.directory) {
      archive_entry_set_filetype(entry, AE_IFDIR);
      archive_entry_set_perm(entry, 0755);
    } else if (!e.symlink_target.empty()) {
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, e.symlink_target.c_str());
      archive_entry_set_perm(entry, 0777);
    } else {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_perm(entry, 0644);
      archive_entry_set_size(entry, static_cast<la_int64_t>(e.contents.size()));
    }
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
    if (!e.directory && e.symlink_target.empty() && !e.contents.empty()) {
      EXPECT_EQ(archive_write_data(a, e.contents.data(), e.contents.size()),
                static_cast<la_ssize_t>(e.contents.size()));
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

ScopedEnv::~ScopedEnv() {
  for (const auto& [name, saved] : saved_) {
    if (saved.present) {
      setenv(name.c_str(), saved.value.c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
}

void ScopedEnv::Save(const char* name) {
  if (saved_.count(name) > 0) return;
  const char* value = std::getenv(name);
  saved_[name] = Saved{value != nullptr, value != nullptr ? value : ""};
}

void ScopedEnv::Set(const char* name, const std::string& value) {
  Save(name);
  setenv(name, value.c_str(), 1);
}

void ScopedEnv::Unset(const char* name) {
  Save(name);
  unsetenv(name);
}

}  // namespace pact::datasets::testing
