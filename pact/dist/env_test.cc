#include "pact/dist/env.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::dist {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<DistEnv> Read(const std::map<std::string, std::string>& vars) {
  return ReadDistEnv([&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(DistEnvTest, NothingSetIsOneProcess) {
  PACT_ASSERT_OK_AND_ASSIGN(DistEnv env, Read({}));
  EXPECT_FALSE(env.distributed());
  EXPECT_EQ(env.world_size, 1);
}

TEST(DistEnvTest, ReadsTheTorchrunVariables) {
  PACT_ASSERT_OK_AND_ASSIGN(DistEnv env, Read({{"RANK", "3"},
                                               {"WORLD_SIZE", "4"},
                                               {"LOCAL_RANK", "1"},
                                               {"LOCAL_WORLD_SIZE", "2"},
                                               {"MASTER_ADDR", "10.0.0.7"},
                                               {"MASTER_PORT", "1234"}}));
  EXPECT_TRUE(env.distributed());
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 2);
  EXPECT_EQ(env.master_addr, "10.0.0.7");
  EXPECT_EQ(env.master_port, 1234);
}

TEST(DistEnvTest, Defaults) {
  PACT_ASSERT_OK_AND_ASSIGN(DistEnv env, Read({{"RANK", "0"}, {"WORLD_SIZE", "2"}}));
  EXPECT_EQ(env.master_addr, "127.0.0.1");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_EQ(env.local_world_size, 1);
}

TEST(DistEnvTest, RejectsBadValues) {
  EXPECT_THAT(Read({{"RANK", "0"}}).status().message(), HasSubstr("set together"));
  EXPECT_THAT(Read({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).status().message(),
              HasSubstr("RANK='2': must be an integer in [0, 1]"));
  EXPECT_THAT(Read({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).status().message(), HasSubstr("RANK='x'"));
  EXPECT_THAT(
      Read({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}).status().message(),
      HasSubstr("MASTER_PORT"));
  EXPECT_THAT(
      Read({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}})
          .status()
          .message(),
      HasSubstr("LOCAL_RANK=2 must be < LOCAL_WORLD_SIZE=2"));
}

TEST(DistEnvTest, ThreadsPerProcessSplitsTheCores) {
  DistEnv env;
  EXPECT_EQ(ThreadsPerProcess(3, env), 3);
  env.local_world_size = 1 << 20;
  EXPECT_EQ(ThreadsPerProcess(0, env), 1);
}

}  // namespace
}  // namespace pact::dist
