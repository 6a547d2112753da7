// MD5 (RFC 1321) through OpenSSL's EVP interface, only to verify downloads against the
// checksums datasets publish. Not for anything security-related.
#ifndef PACT_DATASETS_MD5_H_
#define PACT_DATASETS_MD5_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace pact::datasets {

// Incremental MD5: Update any number of times, then HexDigest once.
class Md5 {
 public:
  Md5();
  void Update(absl::string_view data);
  // The 32 lowercase hex digits of the digest. Finalizes: call once.
  std::string HexDigest();

 private:
  struct ContextDeleter {
    void operator()(::evp_md_ctx_st* context) const;
  };

  std::unique_ptr<::evp_md_ctx_st, ContextDeleter> context_;
  bool finalized_ = false;
};

// MD5 of `data` as 32 lowercase hex digits.
std::string Md5Hex(absl::string_view data);

// MD5 of a whole file, read in 1 MiB pieces (archives are far larger than memory may allow).
// Errors name `path` (NotFound, PermissionDenied, ...).
absl::StatusOr<std::string> Md5File(const std::string& path);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_MD5_H_
