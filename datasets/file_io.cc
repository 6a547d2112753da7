#include "datasets/file_io.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pact::datasets {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

absl::Status ErrnoError(int error_number, absl::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(error_number, absl::StrCat(what, " ", path));
}

}  // namespace

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "cannot stat", path);
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": is a folder, expected a file"));
  }
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return ErrnoError(errno, "cannot open", path);
  std::string contents;
  // The size from stat avoids regrowing; the loop below still copes with a file that changes.
  contents.resize(static_cast<size_t>(st.st_size));
  size_t total = 0;
  while (true) {
    if (total == contents.size()) contents.resize(contents.size() + (1 << 16));
    const size_t n = std::fread(&contents[total], 1, contents.size() - total, file.get());
    total += n;
    if (n == 0) break;
  }
  if (std::ferror(file.get())) return ErrnoError(errno, "error reading", path);
  contents.resize(total);
  return contents;
}

bool IsGzip(absl::string_view data) {
  return data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1f &&
         static_cast<unsigned char>(data[1]) == 0x8b;
}

absl::StatusOr<std::string> Gunzip(absl::string_view compressed, absl::string_view name) {
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  // 16 + MAX_WBITS: gzip wrapper only (zlib or raw deflate would be a different file format).
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat("inflateInit2 failed for ", name));
  }
  std::string out;
  // Fashion-MNIST's images compress about 2x; start there and grow geometrically.
  out.resize(std::max<size_t>(compressed.size() * 2, 1 << 16));
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  size_t produced = 0;
  absl::Status status;
  while (true) {
    if (produced == out.size()) out.resize(out.size() * 2);
    stream.next_out = reinterpret_cast<Bytef*>(&out[produced]);
    stream.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    const int rc = inflate(&stream, Z_NO_FLUSH);
    produced = reinterpret_cast<char*>(stream.next_out) - out.data();
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (concatenated .gz files are valid gzip).
      if (stream.avail_in == 0) break;
      if (inflateReset(&stream) != Z_OK) {
        status = absl::InternalError(absl::StrCat("inflateReset failed for ", name));
        break;
      }
      continue;
    }
    if (rc == Z_OK || rc == Z_BUF_ERROR) {
      if (stream.avail_out == 0) continue;  // out of output space: grow and go on
      if (stream.avail_in == 0) {
        status = absl::DataLossError(absl::StrCat(
            name, ": truncated gzip data (input ends after ", compressed.size(),
            " compressed bytes, before the end of the stream); download the file again"));
        break;
      }
      continue;
    }
    status = absl::DataLossError(absl::StrCat(
        name, ": corrupt gzip data (zlib: ", stream.msg != nullptr ? stream.msg : zError(rc),
        "); download the file again"));
    break;
  }
  inflateEnd(&stream);
  if (!status.ok()) return status;
  out.resize(produced);
  return out;
}

absl::StatusOr<std::string> ReadMaybeGzippedFile(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok() || !IsGzip(*contents)) return contents;
  return Gunzip(*contents, path);
}

}  // namespace pact::datasets
