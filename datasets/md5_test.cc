#include "datasets/md5.h"

#include <string>

#include "absl/status/status.h"
#include "datasets/test_fixtures.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::datasets {
namespace {

// RFC 1321 appendix A.5.
TEST(Md5Test, Rfc1321TestSuite) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(Md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(Md5Hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(Md5Hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(Md5Hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(Md5Hex("1234567890123456789012345678901234567890123456789012345678901234567890"
                   "1234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(Md5Test, IncrementalUpdatesMatchOneShotAcrossBlockBoundaries) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 7 + 1));
  const std::string expected = Md5Hex(data);
  for (size_t piece : {1, 3, 55, 56, 63, 64, 65, 127}) {
    Md5 md5;
    for (size_t i = 0; i < data.size(); i += piece) md5.Update(data.substr(i, piece));
    EXPECT_EQ(md5.HexDigest(), expected) << "pieces of " << piece;
  }
}

TEST(Md5Test, PaddingEdgeLengths) {
  // 55, 56 and 64 bytes exercise the one- and two-block paddings (values from md5sum).
  EXPECT_EQ(Md5Hex(std::string(55, 'a')), "ef1772b6dff9a122358552954ad0df65");
  EXPECT_EQ(Md5Hex(std::string(56, 'a')), "3b0c8ac703f828b04c6c197006d17218");
  EXPECT_EQ(Md5Hex(std::string(64, 'a')), "014842d480b571495a4a0363793f7367");
}

TEST(Md5Test, FileDigestAndMissingFile) {
  const std::string dir = ::pact::testing::TestTempDir("md5");
  testing::WriteFileOrFail(dir + "/abc", "abc");
  auto digest = Md5File(dir + "/abc");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(Md5File(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pact::datasets
