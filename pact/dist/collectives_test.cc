#include "pact/dist/collectives.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "pact/core/test_util.h"

namespace pact::dist {
namespace {

TEST(LocalCollectivesTest, IsRankZeroOfOneAndEveryOperationIsTheIdentity) {
  std::unique_ptr<Collectives> local = LocalCollectives();
  EXPECT_EQ(local->rank(), 0);
  EXPECT_EQ(local->size(), 1);
  EXPECT_TRUE(local->is_writer());
  PACT_EXPECT_OK(local->AttachModel(nullptr));
  PACT_EXPECT_OK(local->AverageGradients());
  PACT_EXPECT_OK(local->BroadcastBuffers());
  std::vector<double> values = {1.5, -2.0, 7.0};
  PACT_EXPECT_OK(local->AllReduceSum(&values, "sums"));
  EXPECT_EQ(values, (std::vector<double>{1.5, -2.0, 7.0}));
  PACT_EXPECT_OK(local->Barrier("end"));
  PACT_ASSERT_OK_AND_ASSIGN(bool any, local->AnyRank(true, "stop"));
  EXPECT_TRUE(any);
  PACT_ASSERT_OK_AND_ASSIGN(any, local->AnyRank(false, "stop"));
  EXPECT_FALSE(any);
  PACT_EXPECT_OK(local->CheckSameOnEveryRank(12345, "the resumed step"));
}

// Two ranks simulated by a fake that adds what a peer contributes.
class TwoRanks : public Collectives {
 public:
  explicit TwoRanks(std::vector<double> peer) : peer_(std::move(peer)) {}
  int rank() const override { return 1; }
  int size() const override { return 2; }
  absl::Status AttachModel(std::shared_ptr<torch::nn::Module>) override { return absl::OkStatus(); }
  absl::Status AverageGradients() override { return absl::OkStatus(); }
  absl::Status BroadcastBuffers() override { return absl::OkStatus(); }
  absl::Status AllReduceSum(std::vector<double>* values, absl::string_view) override {
    for (size_t i = 0; i < values->size() && i < peer_.size(); ++i) (*values)[i] += peer_[i];
    return absl::OkStatus();
  }
  absl::Status Barrier(absl::string_view) override { return absl::OkStatus(); }

 private:
  std::vector<double> peer_;
};

TEST(CollectivesTest, CheckSameOnEveryRankNamesWhatDiffers) {
  TwoRanks same({40.0, 1.0});
  PACT_EXPECT_OK(same.CheckSameOnEveryRank(40, "the resumed step"));
  TwoRanks differs({32.0, 1.0});
  const absl::Status status = differs.CheckSameOnEveryRank(40, "the resumed step");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "the resumed step is 40 on rank 1 but not on every one of the 2 ranks");
}

TEST(CollectivesTest, AnyRankIsTrueWhenAPeerSaysSo) {
  TwoRanks peer_stops({1.0});
  PACT_ASSERT_OK_AND_ASSIGN(bool any, peer_stops.AnyRank(false, "stop"));
  EXPECT_TRUE(any);
}

}  // namespace
}  // namespace pact::dist
