// Tests of the fused PACT and DoReFa ops against the pure-autograd reference
// (reference_ops.h), finite differences and the paper's boundary rules.
#include "pact/quant/pact_ops.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/quant/buffer_cache.h"
#include "pact/quant/kernel_test_util.h"
#include "pact/quant/pact_kernels.h"
#include "pact/quant/reference_ops.h"

namespace pact::quant {
namespace {

using ::testing::HasSubstr;

// Normal values around [0, alpha], with the edge cases written over the first elements.
torch::Tensor MakeInput(at::IntArrayRef shape, torch::ScalarType dtype, double alpha,
                        uint64_t seed) {
  torch::Tensor x = Randn(shape, dtype, seed) * (0.75 * alpha) + 0.4 * alpha;
  torch::Tensor flat = x.view({-1});
  const double a = dtype == torch::kFloat ? static_cast<float>(alpha) : alpha;
  const double below =
      dtype == torch::kFloat ? std::nextafter(static_cast<float>(a), 0.0f) : std::nextafter(a, 0.0);
  const double above = dtype == torch::kFloat ? std::nextafter(static_cast<float>(a), 1e30f)
                                              : std::nextafter(a, 1e300);
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> special = {-1e30, -1.0,  -0.0,  0.0,  a,   below,  above,
                                       1e30,  2 * a, 1e-38, -inf, inf, 0.5 * a};
  for (int64_t i = 0; i < flat.numel() && i < static_cast<int64_t>(special.size()); ++i) {
    flat[i] = special[i];
  }
  return x;
}

struct PactResult {
  torch::Tensor y;
  torch::Tensor grad_x;
  torch::Tensor grad_alpha;
};

using PactOp = torch::Tensor (*)(const torch::Tensor&, const torch::Tensor&, int64_t, double);

PactResult RunPact(PactOp op, const torch::Tensor& x, double alpha, int64_t bits,
                   const torch::Tensor& grad, double alpha_min = 0.0) {
  torch::Tensor xv = x.detach().requires_grad_(true);
  torch::Tensor av = torch::full({1}, alpha, torch::dtype(x.scalar_type())).requires_grad_(true);
  torch::Tensor y = op(xv, av, bits, alpha_min);
  y.backward(grad);
  return {y.detach(), xv.grad(), av.grad()};
}

PactResult RunFused(const torch::Tensor& x, double alpha, int64_t bits, const torch::Tensor& grad,
                    double alpha_min = 0.0) {
  return RunPact(&Pact, x, alpha, bits, grad, alpha_min);
}
PactResult RunReference(const torch::Tensor& x, double alpha, int64_t bits,
                        const torch::Tensor& grad, double alpha_min = 0.0) {
  return RunPact(&ReferencePact, x, alpha, bits, grad, alpha_min);
}

double Tolerance(torch::ScalarType dtype) { return dtype == torch::kFloat ? 1e-5 : 1e-12; }

std::string Name(torch::ScalarType dtype) { return dtype == torch::kFloat ? "f32" : "f64"; }

// ------------------------------------------------------------------------------------------
// PACT against the reference, per (bits, dtype).

class PactParamTest : public ::testing::TestWithParam<std::tuple<int64_t, torch::ScalarType>> {
 protected:
  int64_t bits() const { return std::get<0>(GetParam()); }
  torch::ScalarType dtype() const { return std::get<1>(GetParam()); }
};

TEST_P(PactParamTest, MatchesReferenceOnEveryShape) {
  uint64_t seed = 1;
  for (double alpha : {0.75, 1.7, 6.0}) {
    for (const auto& shape : TestShapes()) {
      SCOPED_TRACE(::testing::Message()
                   << "alpha " << alpha << " shape " << at::IntArrayRef(shape));
      const torch::Tensor x = MakeInput(shape, dtype(), alpha, ++seed);
      const torch::Tensor grad = Randn(shape, dtype(), ++seed);
      const PactResult fused = RunFused(x, alpha, bits(), grad);
      const PactResult ref = RunReference(x, alpha, bits(), grad);
      EXPECT_TRUE(torch::equal(fused.y, ref.y));
      EXPECT_TRUE(torch::equal(fused.grad_x, ref.grad_x));
      EXPECT_TRUE(
          torch::allclose(fused.grad_alpha, ref.grad_alpha, Tolerance(dtype()), Tolerance(dtype())))
          << fused.grad_alpha.item<double>() << " vs " << ref.grad_alpha.item<double>();
      EXPECT_EQ(fused.grad_alpha.sizes(), (std::vector<int64_t>{1}));
    }
  }
}

TEST_P(PactParamTest, GradAlphaIsExactlyTheSumOverXAtOrAboveAlpha) {
  const double alpha = 1.7;
  const std::vector<int64_t> shape = {3, 7, 41, 13};
  const torch::Tensor x = MakeInput(shape, dtype(), alpha, 11);
  const torch::Tensor grad = IntegerGrad(shape, dtype(), 12);
  const PactResult fused = RunFused(x, alpha, bits(), grad);
  const PactResult ref = RunReference(x, alpha, bits(), grad);
  const double a = x.new_full({}, alpha).item<double>();
  const torch::Tensor xd = x.to(torch::kDouble);
  const torch::Tensor gd = grad.to(torch::kDouble);
  const double expected = (gd * (xd >= a)).sum().item<double>();
  EXPECT_EQ(fused.grad_alpha.item<double>(), expected);
  EXPECT_EQ(ref.grad_alpha.item<double>(), expected);
  // dL/dx is the upstream gradient exactly on 0 <= x < alpha (Eq. 3), else 0.
  EXPECT_TRUE(torch::equal(fused.grad_x,
                           torch::where((xd >= 0) & (xd < a), grad, torch::zeros_like(grad))));
}

TEST_P(PactParamTest, MatchesFiniteDifferencesAwayFromKinks) {
  if (dtype() != torch::kDouble) GTEST_SKIP() << "finite differences need double";
  const double alpha = 2.5;
  const std::vector<int64_t> shape = {4, 50};
  torch::Tensor x = Randn(shape, dtype(), 21) * 2.0 + 1.0;
  // Keep every element at least 0.05 from the kinks at 0 and alpha.
  x = torch::where((x - alpha).abs() < 0.05, x + 0.1, x);
  x = torch::where(x.abs() < 0.05, x + 0.1, x);
  const torch::Tensor grad = Randn(shape, dtype(), 22);
  const torch::Tensor direction = Randn(shape, dtype(), 23);
  const PactResult fused = RunFused(x, alpha, bits(), grad);
  // With the STE (Eq. 3) the gradient is that of the un-rounded clip, whatever the bits.
  auto loss = [&](const torch::Tensor& xs, double a) {
    torch::NoGradGuard no_grad;
    return (grad * PactForwardKernel(xs, a, /*bits=*/0)).sum().item<double>();
  };
  const double h = 1e-6;
  const double fd_x = (loss(x + h * direction, alpha) - loss(x - h * direction, alpha)) / (2 * h);
  EXPECT_NEAR((fused.grad_x * direction).sum().item<double>(), fd_x, 1e-7);
  const double fd_alpha = (loss(x, alpha + h) - loss(x, alpha - h)) / (2 * h);
  EXPECT_NEAR(fused.grad_alpha.item<double>(), fd_alpha, 1e-7);
}

TEST_P(PactParamTest, QuantizedOutputHasAtMostTwoToTheKLevelsOnTheAlphaGrid) {
  if (bits() == 0) GTEST_SKIP() << "clipping only";
  const double alpha = 1.7;
  const torch::Tensor x = MakeInput({20000}, dtype(), alpha, 31);
  torch::NoGradGuard no_grad;
  const torch::Tensor y = Pact(x, torch::full({1}, alpha), bits()).to(torch::kDouble);
  const double a = x.new_full({}, alpha).item<double>();
  const double levels = std::ldexp(1.0, bits()) - 1;
  const double step = a / levels;
  std::set<double> distinct;
  const double* p = y.data_ptr<double>();
  for (int64_t i = 0; i < y.numel(); ++i) {
    distinct.insert(p[i]);
    const double n = p[i] / step;
    ASSERT_NEAR(n, std::nearbyint(n), 1e-4) << "y = " << p[i];
    ASSERT_GE(n, -1e-4);
    ASSERT_LE(n, levels + 1e-4);
  }
  EXPECT_LE(distinct.size(), static_cast<size_t>(1) << bits());
  EXPECT_EQ(*distinct.begin(), 0.0);
}

// Restores the streaming-store threshold (SetPactStreamingBytes) on scope exit.
class ScopedStreamingBytes {
 public:
  explicit ScopedStreamingBytes(int64_t bytes) : saved_(SetPactStreamingBytes(bytes)) {}
  ~ScopedStreamingBytes() { SetPactStreamingBytes(saved_); }

 private:
  int64_t saved_;
};

TEST_P(PactParamTest, DeterministicAcrossRunsThreadCountsKernelIsasAndStores) {
  ScopedThreadsAndIsa restore;
  const std::vector<int64_t> shape = {(1 << 19) + 777};
  const torch::Tensor x = MakeInput(shape, dtype(), 1.7, 41);
  const torch::Tensor grad = Randn(shape, dtype(), 42);
  at::set_num_threads(1);
  const PactResult first = RunFused(x, 1.7, bits(), grad);
  const std::vector<kernels::KernelIsa> isas = kernels::SupportedKernelIsas();
  for (kernels::KernelIsa isa : isas) {
    ASSERT_TRUE(kernels::SetKernelIsa(isa));
    // Normal stores, then non-temporal stores for every output.
    for (int64_t streaming_bytes : {int64_t{1} << 62, int64_t{0}}) {
      const ScopedStreamingBytes streaming(streaming_bytes);
      for (int threads : {1, 2, 2}) {
        SCOPED_TRACE(::testing::Message() << kernels::ActiveKernels().isa << " threads " << threads
                                          << " streaming from " << streaming_bytes << " bytes");
        at::set_num_threads(threads);
        const PactResult again = RunFused(x, 1.7, bits(), grad);
        EXPECT_TRUE(SameBits(first.y, again.y));
        EXPECT_TRUE(SameBits(first.grad_x, again.grad_x));
        EXPECT_TRUE(SameBits(first.grad_alpha, again.grad_alpha));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BitsAndDtypes, PactParamTest,
                         ::testing::Combine(::testing::Values(0, 1, 2, 3, 4, 5, 8),
                                            ::testing::Values(torch::kFloat, torch::kDouble)),
                         [](const ::testing::TestParamInfo<PactParamTest::ParamType>& info) {
                           return "k" + std::to_string(std::get<0>(info.param)) + "_" +
                                  Name(std::get<1>(info.param));
                         });

// ------------------------------------------------------------------------------------------
// PACT edge cases.

TEST(PactTest, BoundariesFollowEquation3) {
  // x:        -1  0  0.5  alpha  2 * alpha
  const torch::Tensor x = torch::tensor({-1.0f, 0.0f, 0.5f, 3.0f, 6.0f});
  const torch::Tensor grad = torch::tensor({1.0f, 2.0f, 4.0f, 8.0f, 16.0f});
  const PactResult r = RunFused(x, 3.0, /*bits=*/2, grad);
  EXPECT_TRUE(torch::equal(r.y, torch::tensor({0.0f, 0.0f, 0.0f, 3.0f, 3.0f})));
  // x == 0 passes its gradient to x; x == alpha passes it to alpha only.
  EXPECT_TRUE(torch::equal(r.grad_x, torch::tensor({0.0f, 2.0f, 4.0f, 0.0f, 0.0f})));
  EXPECT_EQ(r.grad_alpha.item<float>(), 24.0f);
}

TEST(PactTest, DesignDocExample) {
  const PactResult r = RunFused(torch::tensor({-1.0f, 0.5f, 2.0f, 7.0f}), 3.0, 2, torch::ones({4}));
  EXPECT_TRUE(torch::equal(r.y, torch::tensor({0.0f, 0.0f, 2.0f, 3.0f})));
  EXPECT_TRUE(torch::equal(r.grad_x, torch::tensor({0.0f, 1.0f, 1.0f, 0.0f})));
  EXPECT_EQ(r.grad_alpha.item<float>(), 1.0f);
}

TEST(PactTest, NegativeAndHugeInputs) {
  const torch::Tensor x = torch::tensor({-1e30f, -3.0f, 1e30f, std::numeric_limits<float>::max(),
                                         -std::numeric_limits<float>::infinity(),
                                         std::numeric_limits<float>::infinity()});
  const PactResult r = RunFused(x, 2.0, 4, torch::ones({6}));
  EXPECT_TRUE(torch::equal(r.y, torch::tensor({0.0f, 0.0f, 2.0f, 2.0f, 0.0f, 2.0f})));
  EXPECT_TRUE(torch::equal(r.grad_x, torch::zeros({6})));
  EXPECT_EQ(r.grad_alpha.item<float>(), 3.0f);
}

TEST(PactTest, NanInputGivesNanOutputAndNoGradient) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const torch::Tensor x = torch::tensor({nan, 1.0f, 5.0f, nan});
  for (int64_t bits : {0, 4}) {
    const PactResult r = RunFused(x, 2.0, bits, torch::full({4}, 3.0f));
    EXPECT_TRUE(std::isnan(r.y[0].item<float>()));
    EXPECT_TRUE(std::isnan(r.y[3].item<float>()));
    EXPECT_TRUE(torch::equal(r.grad_x, torch::tensor({0.0f, 3.0f, 0.0f, 0.0f})));
    EXPECT_EQ(r.grad_alpha.item<float>(), 3.0f);
    // The reference agrees.
    const PactResult ref = RunReference(x, 2.0, bits, torch::full({4}, 3.0f));
    EXPECT_TRUE(torch::equal(r.grad_x, ref.grad_x));
    EXPECT_TRUE(torch::equal(r.grad_alpha, ref.grad_alpha));
  }
}

TEST(PactTest, MaskedOutGradientsAreSelectedNotMultiplied) {
  const float inf = std::numeric_limits<float>::infinity();
  const torch::Tensor x = torch::tensor({-1.0f, 1.0f, 5.0f});
  const PactResult r =
      RunFused(x, 2.0, 4, torch::tensor({inf, 1.0f, std::numeric_limits<float>::quiet_NaN()}));
  EXPECT_EQ(r.grad_x[0].item<float>(), 0.0f);
  EXPECT_EQ(r.grad_x[1].item<float>(), 1.0f);
  EXPECT_EQ(r.grad_x[2].item<float>(), 0.0f);
}

TEST(PactTest, EmptyTensors) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    const torch::Tensor x = torch::empty({0, 3}, torch::dtype(dtype));
    const PactResult r = RunFused(x, 1.0, 4, torch::empty({0, 3}, torch::dtype(dtype)));
    EXPECT_EQ(r.y.sizes(), x.sizes());
    EXPECT_EQ(r.grad_x.sizes(), x.sizes());
    EXPECT_EQ(r.grad_alpha.item<double>(), 0.0);
  }
}

TEST(PactTest, NonContiguousInputsMatchReference) {
  const torch::Tensor base = MakeInput({6, 8, 10, 12}, torch::kFloat, 1.5, 51);
  const std::vector<std::pair<std::string, torch::Tensor>> inputs = {
      {"transposed", base.transpose(1, 3)},
      {"channels_last", base.contiguous(torch::MemoryFormat::ChannelsLast)},
      {"strided_slice", base.slice(/*dim=*/3, 0, 12, 3)},
      {"expanded", base.select(0, 0).unsqueeze(0).expand({4, 8, 10, 12})},
  };
  for (const auto& [name, x] : inputs) {
    SCOPED_TRACE(name);
    const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 52);
    const PactResult fused = RunFused(x, 1.5, 3, grad);
    const PactResult ref = RunReference(x.contiguous(), 1.5, 3, grad);
    EXPECT_TRUE(torch::equal(fused.y, ref.y));
    EXPECT_TRUE(torch::equal(fused.grad_x, ref.grad_x));
    EXPECT_TRUE(torch::allclose(fused.grad_alpha, ref.grad_alpha, 1e-5, 1e-5));
    if (x.is_non_overlapping_and_dense()) {
      EXPECT_EQ(fused.y.strides(), x.strides());
    }
  }
  // Upstream gradients in another layout than x's.
  const torch::Tensor x = base.contiguous(torch::MemoryFormat::ChannelsLast);
  const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 53);
  const PactResult fused = RunFused(x, 1.5, 3, grad.transpose(0, 1).contiguous().transpose(0, 1));
  const PactResult ref = RunReference(x.contiguous(), 1.5, 3, grad);
  EXPECT_TRUE(torch::equal(fused.grad_x, ref.grad_x));
}

TEST(PactTest, BroadcastGradientFromSumMatchesOnes) {
  const torch::Tensor x = MakeInput({3, 4000}, torch::kFloat, 1.0, 61);
  torch::Tensor xv = x.clone().requires_grad_(true);
  torch::Tensor av = torch::full({1}, 1.0f).requires_grad_(true);
  Pact(xv, av, 4).sum().backward();
  const PactResult ones = RunFused(x, 1.0, 4, torch::ones_like(x));
  EXPECT_TRUE(SameBits(xv.grad(), ones.grad_x));
  EXPECT_TRUE(SameBits(av.grad(), ones.grad_alpha));
}

TEST(PactTest, AlphaGuardClampsForwardButGradientReachesAlpha) {
  const torch::Tensor x = MakeInput({1000}, torch::kFloat, 1.0, 71);
  const torch::Tensor grad = IntegerGrad({1000}, torch::kFloat, 72);
  const double alpha_min = 1.0;
  const PactResult guarded = RunFused(x, /*alpha=*/0.25, 4, grad, alpha_min);
  const PactResult at_min = RunFused(x, /*alpha=*/1.0, 4, grad);
  EXPECT_TRUE(torch::equal(guarded.y, at_min.y));
  EXPECT_TRUE(torch::equal(guarded.grad_x, at_min.grad_x));
  EXPECT_EQ(guarded.grad_alpha.item<float>(), at_min.grad_alpha.item<float>());
  EXPECT_NE(guarded.grad_alpha.item<float>(), 0.0f);
  const PactResult ref = RunReference(x, 0.25, 4, grad, alpha_min);
  EXPECT_TRUE(torch::equal(guarded.y, ref.y));
  EXPECT_TRUE(torch::equal(guarded.grad_alpha, ref.grad_alpha));
  // A NaN alpha takes alpha_min as well.
  const PactResult nan_alpha =
      RunFused(x, std::numeric_limits<double>::quiet_NaN(), 4, grad, alpha_min);
  EXPECT_TRUE(torch::equal(nan_alpha.y, at_min.y));
}

TEST(PactTest, NoGradForwardMatchesAutogradForward) {
  const torch::Tensor x = MakeInput({5, 777}, torch::kFloat, 2.0, 81);
  const PactResult r = RunFused(x, 2.0, 3, torch::ones_like(x));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(Pact(x, torch::full({1}, 2.0f), 3), r.y));
}

TEST(PactTest, TrainingStepsReuseTheirOutputBuffers) {
  // y, the codes and dL/dx come from the buffer cache (buffer_cache.h): once a step has run,
  // the same step allocates no new large block.
  EmptyBufferCache();
  const torch::Tensor x = MakeInput({64, 4096}, torch::kFloat, 2.0, 83).requires_grad_(true);
  const torch::Tensor alpha = torch::full({1}, 2.0f).requires_grad_(true);
  const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 84);
  const auto step = [&] {
    torch::Tensor y = Pact(x, alpha, 4);
    y.backward(grad);
    x.mutable_grad().reset();
    alpha.mutable_grad().reset();
  };
  step();
  const BufferCacheStats before = GetBufferCacheStats();
  for (int i = 0; i < 3; ++i) step();
  const BufferCacheStats after = GetBufferCacheStats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.hits - before.hits, 3 * 3);  // y (1 MiB), codes (64 KiB), dL/dx (1 MiB)
}

// The kernels::kCode* each element of x should get against alpha (in x's dtype).
torch::Tensor ExpectedCodes(const torch::Tensor& x, double alpha) {
  const torch::Tensor a = torch::scalar_tensor(alpha, x.options());
  return (x >= 0).to(torch::kByte) + (x >= a).to(torch::kByte);  // NaN: neither
}

TEST(PactTest, KernelEntryPointsAgree) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    const torch::Tensor x = MakeInput({9, 1111}, dtype, 1.25, 91);
    const torch::Tensor grad = Randn(x.sizes(), dtype, 92);
    const auto [y, codes] = PactForwardWithCodesKernel(x, 1.25, 4);
    EXPECT_TRUE(SameBits(y, PactForwardKernel(x, 1.25, 4)));
    EXPECT_EQ(codes.words.scalar_type(), torch::kByte);
    EXPECT_EQ(codes.words.numel(), 2 * ((x.numel() + 7) / 8));  // 2 bits per element
    EXPECT_TRUE(torch::equal(UnpackPactCodes(codes), ExpectedCodes(x, 1.25)));
    const auto [gx_codes, ga_codes] = PactBackwardFromCodesKernel(grad, codes);
    const auto [gx_x, ga_x] = PactBackwardKernel(grad, x, 1.25);
    EXPECT_TRUE(SameBits(gx_codes, gx_x));
    EXPECT_TRUE(SameBits(ga_codes, ga_x));
    EXPECT_EQ(ga_x.dim(), 0);
    EXPECT_EQ(ga_x.scalar_type(), dtype);
  }
}

TEST(PactTest, CodesArePackedTwoBitsPerElementInMemoryOrder) {
  // 11 elements: one whole group of 8 and a partial one, whose missing bits stay 0.
  const torch::Tensor x = torch::tensor(
      {-1.0f, 0.0f, 0.5f, 2.0f, 3.0f, -0.0f, std::nanf(""), 1.999f, 2.5f, -3.0f, 1.0f});
  const auto [y, codes] = PactForwardWithCodesKernel(x, 2.0, 0);
  ASSERT_EQ(codes.words.numel(), 4);
  const uint8_t* w = codes.words.data_ptr<uint8_t>();
  // Low byte: x >= 0 (elements 1, 2, 3, 4, 5, 7); high byte: x >= alpha (3, 4).
  EXPECT_EQ(w[0], 0b10111110);
  EXPECT_EQ(w[1], 0b00011000);
  // Second group: elements 8, 9, 10 -> x >= 0 for 8 and 10, x >= alpha for 8.
  EXPECT_EQ(w[2], 0b101);
  EXPECT_EQ(w[3], 0b001);
  EXPECT_TRUE(torch::equal(UnpackPactCodes(codes), ExpectedCodes(x, 2.0)));
}

TEST(PactTest, CodesFollowChannelsLastAndPermutedLayouts) {
  ScopedThreadsAndIsa restore;
  for (kernels::KernelIsa isa : kernels::SupportedKernelIsas()) {
    ASSERT_TRUE(kernels::SetKernelIsa(isa));
    const torch::Tensor base = MakeInput({3, 5, 7, 9}, torch::kFloat, 1.5, 93);
    for (const torch::Tensor& x :
         {base.contiguous(torch::MemoryFormat::ChannelsLast), base.permute({2, 0, 3, 1})}) {
      SCOPED_TRACE(::testing::Message()
                   << kernels::ActiveKernels().isa << " strides " << x.strides());
      const auto [y, codes] = PactForwardWithCodesKernel(x, 1.5, 3);
      EXPECT_EQ(codes.strides, y.strides().vec());
      const torch::Tensor unpacked = UnpackPactCodes(codes);
      EXPECT_EQ(unpacked.strides(), y.strides());
      EXPECT_TRUE(torch::equal(unpacked, ExpectedCodes(x, 1.5)));
      // A contiguous upstream gradient is lined up with y's layout.
      const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 94);
      const auto [gx, ga] = PactBackwardFromCodesKernel(grad, codes);
      const auto [gx_ref, ga_ref] = PactBackwardKernel(grad, x, 1.5);
      EXPECT_TRUE(SameBits(gx, gx_ref));
      EXPECT_TRUE(SameBits(ga, ga_ref));
    }
  }
}

TEST(PactTest, RejectsCodesThatDoNotMatch) {
  const torch::Tensor x = torch::randn({4, 6});
  const torch::Tensor grad = torch::randn({4, 6});
  const PactCodes codes = PactForwardWithCodesKernel(x, 1.0, 4).second;
  auto message = [&](PactCodes bad) -> std::string {
    try {
      PactBackwardFromCodesKernel(grad, bad);
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  PactCodes short_words = codes;
  short_words.words = codes.words.slice(0, 0, 4);
  EXPECT_THAT(message(short_words), HasSubstr("uint8 tensor of 6 bytes"));
  PactCodes wrong_dtype = codes;
  wrong_dtype.words = codes.words.to(torch::kInt);
  EXPECT_THAT(message(wrong_dtype), HasSubstr("PactForwardWithCodesKernel returns for 24"));
  PactCodes misaligned = codes;
  misaligned.words = torch::zeros({7}, torch::kByte).slice(0, 1, 7);
  EXPECT_THAT(message(misaligned), HasSubstr("even address"));
  PactCodes overlapping = codes;
  overlapping.strides = {1, 1};
  EXPECT_THAT(message(overlapping), HasSubstr("not a dense layout"));
  PactCodes rank_mismatch = codes;
  rank_mismatch.strides = {1};
  EXPECT_THAT(message(rank_mismatch), HasSubstr("2 sizes but 1 strides"));
  PactCodes other_shape = codes;
  other_shape.sizes = {6, 4};
  other_shape.strides = {4, 1};
  EXPECT_THAT(message(other_shape), HasSubstr("does not match"));
}

TEST(PactTest, ComposedFallbackForOtherDtypes) {
  // BFloat16 on CPU takes the composed path (as CUDA tensors do).
  const torch::Tensor x = MakeInput({4, 300}, torch::kFloat, 2.0, 101).to(torch::kBFloat16);
  ASSERT_FALSE(UsesFusedKernels(x));
  const torch::Tensor grad = IntegerGrad(x.sizes(), torch::kBFloat16, 102);
  const PactResult fused = RunFused(x, 2.0, 3, grad);
  const PactResult ref = RunReference(x, 2.0, 3, grad);
  EXPECT_TRUE(torch::equal(fused.y, ref.y));
  EXPECT_TRUE(torch::equal(fused.grad_x, ref.grad_x));
  EXPECT_TRUE(torch::allclose(fused.grad_alpha.to(torch::kFloat), ref.grad_alpha.to(torch::kFloat),
                              1e-2, 1e-2));
}

TEST(PactTest, RejectsBadArguments) {
  const torch::Tensor x = torch::ones({3});
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  EXPECT_THAT(message([&] { Pact(x, torch::ones({1}), 17); }),
              HasSubstr("bits must be in [0, 16]"));
  EXPECT_THAT(message([&] { Pact(x, torch::ones({2}), 4); }), HasSubstr("one element"));
  EXPECT_THAT(message([&] { Pact(x, torch::zeros({1}), 4); }), HasSubstr("alpha must be > 0"));
  EXPECT_THAT(message([&] { Pact(x, -torch::ones({1}), 4); }), HasSubstr("alpha must be > 0"));
  EXPECT_THAT(message([&] { DorefaWeight(x, 17); }), HasSubstr("[0, 16] or 32"));
  EXPECT_THAT(message([&] { PactBackwardKernel(torch::ones({4}), x, 1.0); }),
              HasSubstr("does not match"));
}

// ------------------------------------------------------------------------------------------
// DoReFa.

struct DorefaResult {
  torch::Tensor w_q;
  torch::Tensor grad;
};

using DorefaOp = torch::Tensor (*)(const torch::Tensor&, int64_t);

DorefaResult RunDorefa(DorefaOp op, const torch::Tensor& w, int64_t bits,
                       const torch::Tensor& grad) {
  torch::Tensor wv = w.detach().requires_grad_(true);
  torch::Tensor w_q = op(wv, bits);
  w_q.backward(grad);
  return {w_q.detach(), wv.grad()};
}

// Weight shapes of ResNet-20 and ResNet-50 layers (scaled down where large) plus odd sizes.
const std::vector<std::vector<int64_t>>& WeightShapes() {
  static const auto* shapes = new std::vector<std::vector<int64_t>>{
      {1}, {10, 7}, {16, 3, 3, 3}, {16, 16, 3, 3}, {64, 32, 1, 1}, {128, 64, 3, 3}};
  return *shapes;
}

class DorefaParamTest : public ::testing::TestWithParam<std::tuple<int64_t, torch::ScalarType>> {
 protected:
  int64_t bits() const { return std::get<0>(GetParam()); }
  torch::ScalarType dtype() const { return std::get<1>(GetParam()); }
};

TEST_P(DorefaParamTest, MatchesReference) {
  uint64_t seed = 200;
  for (const auto& shape : WeightShapes()) {
    SCOPED_TRACE(::testing::Message() << "shape " << at::IntArrayRef(shape));
    const torch::Tensor w = Randn(shape, dtype(), ++seed) * 0.3;
    const torch::Tensor grad = Randn(shape, dtype(), ++seed);
    const DorefaResult fused = RunDorefa(&DorefaWeight, w, bits(), grad);
    const DorefaResult ref = RunDorefa(&ReferenceDorefaWeight, w, bits(), grad);
    EXPECT_TRUE(torch::equal(fused.w_q, ref.w_q));
    const double tol = Tolerance(dtype());
    EXPECT_TRUE(
        torch::allclose(fused.grad, ref.grad, 10 * tol, tol * ref.grad.abs().max().item<double>()))
        << (fused.grad - ref.grad).abs().max().item<double>();
  }
}

TEST_P(DorefaParamTest, TiedMaximaShareTheMaxGradientLikeAutograd) {
  torch::Tensor w = Randn({200}, dtype(), 301) * 0.4;
  w = w.clamp(-1.4, 1.4);
  w[3] = 1.5;
  w[50] = 1.5;
  w[120] = -1.5;  // three elements at max|tanh(w)|, of both signs
  const torch::Tensor grad = Randn({200}, dtype(), 302);
  const DorefaResult fused = RunDorefa(&DorefaWeight, w, bits(), grad);
  const DorefaResult ref = RunDorefa(&ReferenceDorefaWeight, w, bits(), grad);
  EXPECT_TRUE(torch::equal(fused.w_q, ref.w_q));
  const double tol = Tolerance(dtype());
  EXPECT_TRUE(torch::allclose(fused.grad, ref.grad, 10 * tol, tol))
      << (fused.grad - ref.grad).abs().max().item<double>();
}

TEST_P(DorefaParamTest, ValuesAreTwoToTheKLevelsInMinusOneToOne) {
  const torch::Tensor w = Randn({64, 64, 3, 3}, dtype(), 311);
  torch::NoGradGuard no_grad;
  const torch::Tensor w_q = DorefaWeight(w, bits()).to(torch::kDouble);
  const double levels = std::ldexp(1.0, bits()) - 1;
  std::set<double> distinct;
  const double* p = w_q.data_ptr<double>();
  for (int64_t i = 0; i < w_q.numel(); ++i) {
    ASSERT_GE(p[i], -1.0);
    ASSERT_LE(p[i], 1.0);
    const double n = (p[i] + 1) / 2 * levels;
    // 2 q - 1 is rounded to the dtype: allow a few ulps of 1, scaled to level units.
    ASSERT_NEAR(n, std::nearbyint(n), levels * (dtype() == torch::kFloat ? 3e-7 : 1e-15));
    distinct.insert(p[i]);
  }
  EXPECT_LE(distinct.size(), static_cast<size_t>(1) << bits());
  // The element at max|tanh(w)| maps exactly onto an end of the range.
  EXPECT_EQ(w_q.abs().max().item<double>(), 1.0);
}

TEST_P(DorefaParamTest, MatchesFiniteDifferencesOfTheUnroundedExpression) {
  if (dtype() != torch::kDouble) GTEST_SKIP() << "finite differences need double";
  const torch::Tensor w = Randn({12, 9}, dtype(), 321) * 0.5;
  const torch::Tensor grad = Randn(w.sizes(), dtype(), 322);
  const torch::Tensor direction = Randn(w.sizes(), dtype(), 323);
  const DorefaResult fused = RunDorefa(&DorefaWeight, w, bits(), grad);
  auto loss = [&](const torch::Tensor& ws) {
    torch::NoGradGuard no_grad;
    const torch::Tensor t = torch::tanh(ws);
    return (grad * (t / t.abs().max())).sum().item<double>();  // 2 (t / 2m + 0.5) - 1
  };
  const double h = 1e-6;
  const double fd = (loss(w + h * direction) - loss(w - h * direction)) / (2 * h);
  EXPECT_NEAR((fused.grad * direction).sum().item<double>(), fd, 1e-6);
}

TEST_P(DorefaParamTest, DeterministicAcrossThreadCountsAndKernelIsas) {
  ScopedThreadsAndIsa restore;
  const torch::Tensor w = Randn({256, 256, 3, 3}, dtype(), 331) * 0.2;
  const torch::Tensor grad = Randn(w.sizes(), dtype(), 332);
  at::set_num_threads(1);
  const DorefaResult first = RunDorefa(&DorefaWeight, w, bits(), grad);
  const std::vector<kernels::KernelIsa> isas = kernels::SupportedKernelIsas();
  for (kernels::KernelIsa isa : isas) {
    ASSERT_TRUE(kernels::SetKernelIsa(isa));
    for (int threads : {1, 2}) {
      SCOPED_TRACE(::testing::Message() << kernels::ActiveKernels().isa << " threads " << threads);
      at::set_num_threads(threads);
      const DorefaResult again = RunDorefa(&DorefaWeight, w, bits(), grad);
      EXPECT_TRUE(SameBits(first.w_q, again.w_q));
      EXPECT_TRUE(SameBits(first.grad, again.grad));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BitsAndDtypes, DorefaParamTest,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 5, 8, 16),
                                            ::testing::Values(torch::kFloat, torch::kDouble)),
                         [](const ::testing::TestParamInfo<DorefaParamTest::ParamType>& info) {
                           return "k" + std::to_string(std::get<0>(info.param)) + "_" +
                                  Name(std::get<1>(info.param));
                         });

TEST(DorefaTest, ZeroAnd32BitsAreIdentity) {
  const torch::Tensor w = torch::randn({8, 3}).requires_grad_(true);
  for (int64_t bits : {0, 32}) {
    const torch::Tensor w_q = DorefaWeight(w, bits);
    EXPECT_TRUE(w_q.is_same(w));
  }
  const torch::Tensor grad = torch::randn({8, 3});
  DorefaWeight(w, 0).backward(grad);
  EXPECT_TRUE(torch::equal(w.grad(), grad));
}

TEST(DorefaTest, NoGradForwardMatchesAutogradForward) {
  const torch::Tensor w = torch::randn({32, 16, 3, 3}, Rng(341));
  const DorefaResult r = RunDorefa(&DorefaWeight, w, 4, torch::ones_like(w));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(DorefaWeight(w, 4), r.w_q));
}

TEST(DorefaTest, NonContiguousAndBroadcastGradients) {
  const torch::Tensor base = torch::randn({16, 32, 3, 3}, Rng(351));
  for (const torch::Tensor& w : {base.transpose(0, 1), base.slice(1, 0, 32, 2)}) {
    const torch::Tensor grad = torch::randn(w.sizes(), Rng(352));
    const DorefaResult fused = RunDorefa(&DorefaWeight, w, 3, grad);
    const DorefaResult ref = RunDorefa(&ReferenceDorefaWeight, w.contiguous(), 3, grad);
    EXPECT_TRUE(torch::equal(fused.w_q, ref.w_q));
    EXPECT_TRUE(torch::allclose(fused.grad, ref.grad, 1e-4, 1e-6));
  }
  torch::Tensor wv = base.clone().requires_grad_(true);
  DorefaWeight(wv, 3).sum().backward();
  const DorefaResult ones = RunDorefa(&DorefaWeight, base, 3, torch::ones_like(base));
  EXPECT_TRUE(SameBits(wv.grad(), ones.grad));
}

TEST(DorefaTest, EmptyAndNanWeights) {
  torch::NoGradGuard no_grad;
  EXPECT_EQ(DorefaWeight(torch::empty({0, 4}), 4).sizes(), (std::vector<int64_t>{0, 4}));
  const torch::Tensor w = torch::tensor({0.5f, std::numeric_limits<float>::quiet_NaN(), -0.2f});
  EXPECT_TRUE(torch::isnan(DorefaWeight(w, 4)).all().item<bool>());
  EXPECT_TRUE(torch::isnan(ReferenceDorefaWeight(w, 4)).all().item<bool>());
}

}  // namespace
}  // namespace pact::quant
