#include "datasets/md5.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace pact::datasets {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

void Md5::ContextDeleter::operator()(::evp_md_ctx_st* context) const { EVP_MD_CTX_free(context); }

// EVP failures here mean a broken OpenSSL install (or FIPS mode without MD5), not bad input.
Md5::Md5() : context_(EVP_MD_CTX_new()) {
  CHECK(context_ != nullptr) << "EVP_MD_CTX_new failed";
  CHECK_EQ(EVP_DigestInit_ex(context_.get(), EVP_md5(), nullptr), 1)
      << "EVP_DigestInit_ex(EVP_md5()) failed";
}

void Md5::Update(absl::string_view data) {
  CHECK(!finalized_) << "Md5::Update after HexDigest";
  CHECK_EQ(EVP_DigestUpdate(context_.get(), data.data(), data.size()), 1);
}

std::string Md5::HexDigest() {
  CHECK(!finalized_) << "Md5::HexDigest called twice";
  finalized_ = true;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  CHECK_EQ(EVP_DigestFinal_ex(context_.get(), digest, &size), 1);
  CHECK_EQ(size, 16u);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * size);
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string Md5Hex(absl::string_view data) {
  Md5 md5;
  md5.Update(data);
  return md5.HexDigest();
}

absl::StatusOr<std::string> Md5File(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  Md5 md5;
  std::vector<char> buffer(1 << 20);
  while (true) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (n > 0) md5.Update(absl::string_view(buffer.data(), n));
    if (n < buffer.size()) break;
  }
  if (std::ferror(file.get()))
    return absl::ErrnoToStatus(errno, absl::StrCat("error reading ", path));
  return md5.HexDigest();
}

}  // namespace pact::datasets
