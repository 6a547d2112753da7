#include "datasets/file_io.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "pact/core/file.h"

namespace pact::datasets {

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
