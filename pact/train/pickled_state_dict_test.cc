#include "pact/train/pickled_state_dict.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/file.h"
#include "pact/core/test_util.h"

namespace pact::train {
namespace {

using ::testing::HasSubstr;

// A string literal's bytes, embedded zeros included.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

// torch.save(state_dict) with one entry {'a': 1} and its _metadata, as Python's pickle writes
// it (protocol 2): the OrderedDict class is memo slot 0, called again for the metadata.
std::string PythonStateDictPickle() {
  return Bytes("\x80\x02") + Bytes("ccollections\nOrderedDict\n") + Bytes("q\x00") + ")R" +
         Bytes("q\x01") +
         Bytes(
             "X\x01\x00\x00\x00"
             "a") +
         Bytes("K\x01") + "s" + "}" +
         Bytes(
             "X\x09\x00\x00\x00"
             "_metadata") +
         Bytes("h\x00") + ")R" + "(" + Bytes("X\x00\x00\x00\x00") + "}" + "u" + "s" + "b" + ".";
}

TEST(PatchOrderedDictsTest, OrderedDictCallsBecomeEmptyDictsAndTheTopLevelStateIsDropped) {
  EXPECT_EQ(PatchOrderedDicts(PythonStateDictPickle()), Bytes("\x80\x02") + "}" + Bytes("q\x01") +
                                                            Bytes("X\x01\x00\x00\x00"
                                                                  "a") +
                                                            Bytes("K\x01") + "s" + ".");
}

TEST(PatchOrderedDictsTest, TensorHookCallsBecomeEmptyDictsToo) {
  // {'w': _rebuild_tensor_v2(..., OrderedDict())} as pickle_save writes it, shortened: the
  // hooks argument becomes {} (LibTorch ignores it either way); no BUILD to drop.
  const std::string in = Bytes("\x80\x02}(") +
                         Bytes(
                             "X\x01\x00\x00\x00"
                             "w") +
                         "(" + Bytes("K\x00") + Bytes("ccollections\nOrderedDict\n") +
                         Bytes("q\x08") + ")R" + "t" + "u.";
  EXPECT_EQ(PatchOrderedDicts(in), Bytes("\x80\x02}(") +
                                       Bytes("X\x01\x00\x00\x00"
                                             "w") +
                                       "(" + Bytes("K\x00") + "}" + "t" + "u.");
}

TEST(PatchOrderedDictsTest, BytesInsideStringsAndUnknownOpcodesAreLeftAlone) {
  // A string whose bytes look like an OrderedDict call: walked over, not patched.
  const std::string in = Bytes("\x80\x02}") +
                         Bytes(
                             "X\x1b\x00\x00\x00"
                             "ccollections\nOrderedDict\n)R") +
                         Bytes("K\x01") + "s.";
  EXPECT_EQ(PatchOrderedDicts(in), in);
  const std::string unknown = Bytes("\x80\x02\xff.");
  EXPECT_EQ(PatchOrderedDicts(unknown), unknown);
  const std::string truncated = Bytes("\x80\x02X\xff\x00\x00\x00ab");
  EXPECT_EQ(PatchOrderedDicts(truncated), truncated);
}

TEST(ReadPickledStateDictTest, ReadsWhatPickleSaveWrites) {
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("layer.weight", torch::arange(6.0).reshape({2, 3}));
  dict.insert("layer.bias", torch::ones({2}));
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  const std::string path = testing::TestTempDir("pickle") + "/sd.pt";
  PACT_ASSERT_OK(WriteFileAtomically(path, absl::string_view(bytes.data(), bytes.size())));
  PACT_ASSERT_OK_AND_ASSIGN(auto tensors, ReadPickledStateDict(path));
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_TRUE(torch::equal(tensors["layer.weight"], torch::arange(6.0).reshape({2, 3})));
  EXPECT_TRUE(torch::equal(tensors["layer.bias"], torch::ones({2})));
}

TEST(ReadPickledStateDictTest, OtherFilesAreDataLoss) {
  const std::string path = testing::TestTempDir("pickle_bad") + "/x.pt";
  PACT_ASSERT_OK(WriteFileAtomically(path, "plain text"));
  const absl::Status status = ReadPickledStateDict(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is not a pickled state dict"));
  const std::vector<char> list = torch::pickle_save(c10::IValue(std::vector<int64_t>{1, 2}));
  PACT_ASSERT_OK(WriteFileAtomically(path, absl::string_view(list.data(), list.size())));
  EXPECT_THAT(std::string(ReadPickledStateDict(path).status().message()),
              HasSubstr("not a dict of tensors"));
}

}  // namespace
}  // namespace pact::train
