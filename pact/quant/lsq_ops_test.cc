// Tests of the fused LSQ op (lsq_ops.h) against the pure-autograd reference (reference_ops.h),
// exact double sums, the common Python formulation and the paper's boundary rules
// (Esser et al. 2019, Eq. 1-3 and 5).
#include "pact/quant/lsq_ops.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/quant/buffer_cache.h"
#include "pact/quant/kernel_test_util.h"
#include "pact/quant/lsq_kernels.h"
#include "pact/quant/pact_kernels.h"
#include "pact/quant/reference_ops.h"

namespace pact::quant {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

// `v` rounded to dtype (float or double).
double InDtype(double v, torch::ScalarType dtype) {
  return dtype == torch::kFloat ? static_cast<float>(v) : v;
}
double NextToward(double v, double to, torch::ScalarType dtype) {
  return dtype == torch::kFloat ? std::nextafter(static_cast<float>(v), static_cast<float>(to))
                                : std::nextafter(v, to);
}

// Normal values spread over [-Qn, Qp] * step and somewhat beyond, with the edge cases written
// over the first elements: huge, infinite, signed zeros, tiny, the clip points -Qn * s and
// Qp * s with their neighbouring floats, and ties between levels.
torch::Tensor MakeInput(at::IntArrayRef shape, torch::ScalarType dtype, double step, LsqRange range,
                        uint64_t seed) {
  const double s = InDtype(step, dtype);
  const double lo = static_cast<double>(-range.qn), hi = static_cast<double>(range.qp);
  const double center = 0.5 * (lo + hi), half_width = 0.5 * (hi - lo);
  torch::Tensor x = (Randn(shape, dtype, seed) * (0.8 * half_width) + center) * s;
  torch::Tensor flat = x.view({-1});
  const double x_lo = InDtype(lo * s, dtype), x_hi = InDtype(hi * s, dtype);
  const std::vector<double> special = {-1e30,
                                       1e30,
                                       -kInf,
                                       kInf,
                                       -0.0,
                                       0.0,
                                       x_lo,
                                       x_hi,
                                       NextToward(x_lo, 1e30, dtype),
                                       NextToward(x_lo, -1e30, dtype),
                                       NextToward(x_hi, 1e30, dtype),
                                       NextToward(x_hi, -1e30, dtype),
                                       (lo + 0.5) * s,
                                       (hi - 0.5) * s,
                                       0.5 * s,
                                       -0.5 * s,
                                       1.5 * s,
                                       1e-38,
                                       -1e-38,
                                       0.25 * s,
                                       -0.25 * s};
  for (int64_t i = 0; i < flat.numel() && i < static_cast<int64_t>(special.size()); ++i) {
    flat[i] = special[i];
  }
  return x;
}

struct LsqResult {
  torch::Tensor y;
  torch::Tensor grad_x;
  torch::Tensor grad_step;
};

using LsqOp = torch::Tensor (*)(const torch::Tensor&, const torch::Tensor&, LsqRange, double,
                                double);

struct RunOptions {
  double grad_scale = 1.0;
  double step_min = 0.0;
  torch::ScalarType step_dtype = torch::kFloat;  // the usual parameter dtype
};

LsqResult RunLsq(LsqOp op, const torch::Tensor& x, double step, LsqRange range,
                 const torch::Tensor& grad, const RunOptions& options = {}) {
  torch::Tensor xv = x.detach().requires_grad_(true);
  torch::Tensor sv = torch::full({1}, step, torch::dtype(options.step_dtype)).requires_grad_(true);
  torch::Tensor y = op(xv, sv, range, options.grad_scale, options.step_min);
  y.backward(grad);
  return {y.detach(), xv.grad(), sv.grad()};
}

LsqResult RunFused(const torch::Tensor& x, double step, LsqRange range, const torch::Tensor& grad,
                   const RunOptions& options = {}) {
  return RunLsq(&Lsq, x, step, range, grad, options);
}
LsqResult RunReference(const torch::Tensor& x, double step, LsqRange range,
                       const torch::Tensor& grad, const RunOptions& options = {}) {
  return RunLsq(&ReferenceLsq, x, step, range, grad, options);
}

// The formulation most Python LSQ code uses, through plain autograd:
//   s' = grad_scale(s, g);  y = round_ste(clamp(x / s', -Qn, Qp)) * s'.
LsqResult RunPythonFormulation(const torch::Tensor& x, double step, LsqRange range,
                               const torch::Tensor& grad, double grad_scale) {
  torch::Tensor xv = x.detach().requires_grad_(true);
  torch::Tensor sv = torch::full({1}, step, torch::dtype(x.scalar_type())).requires_grad_(true);
  const torch::Tensor scaled = sv * grad_scale;
  const torch::Tensor s = (sv - scaled).detach() + scaled;
  const torch::Tensor v = torch::clamp(xv / s, -range.qn, range.qp);
  const torch::Tensor v_bar = (torch::round(v) - v).detach() + v;
  torch::Tensor y = v_bar * s;
  y.backward(grad);
  return {y.detach(), xv.grad(), sv.grad()};
}

double Epsilon(torch::ScalarType dtype) { return dtype == torch::kFloat ? 1e-5 : 1e-12; }

// Eq. 3's dv_hat/ds per element, computed in double from q = x / s (q in x's dtype): the test's
// own, independent formula.
torch::Tensor ExpectedStepDerivative(const torch::Tensor& x, double step, LsqRange range) {
  const torch::Tensor q =
      (x / torch::scalar_tensor(InDtype(step, x.scalar_type()), x.options())).to(torch::kDouble);
  const double lo = static_cast<double>(-range.qn), hi = static_cast<double>(range.qp);
  torch::Tensor d = torch::round(q) - q;
  d = torch::where(q <= lo, torch::full_like(q, lo), d);
  d = torch::where(q >= hi, torch::full_like(q, hi), d);
  return torch::where(torch::isnan(q), torch::zeros_like(q), d);
}

// Whether -Qn < x / s < Qp, in x's dtype (Eq. 5).
torch::Tensor StrictlyInside(const torch::Tensor& x, double step, LsqRange range) {
  const torch::Tensor q = x / torch::scalar_tensor(InDtype(step, x.scalar_type()), x.options());
  return (q > static_cast<double>(-range.qn)) & (q < static_cast<double>(range.qp));
}

// ------------------------------------------------------------------------------------------
// Per (bits, signed, dtype).

using LsqParam = std::tuple<int64_t, bool, torch::ScalarType>;

class LsqParamTest : public ::testing::TestWithParam<LsqParam> {
 protected:
  int64_t bits() const { return std::get<0>(GetParam()); }
  bool is_signed() const { return std::get<1>(GetParam()); }
  torch::ScalarType dtype() const { return std::get<2>(GetParam()); }
  LsqRange range() const { return is_signed() ? LsqSignedRange(bits()) : LsqUnsignedRange(bits()); }
  // Eq. 4's companion, the paper's gradient scale, for an input of n elements.
  double GradScale(int64_t n) const {
    return 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)) * range().qp);
  }
};

TEST_P(LsqParamTest, MatchesReferenceOnEveryShapeAndKernelIsa) {
  ScopedThreadsAndIsa restore;
  for (kernels::KernelIsa isa : kernels::SupportedKernelIsas()) {
    ASSERT_TRUE(kernels::SetKernelIsa(isa));
    uint64_t seed = 1;
    // A power-of-two fraction (exact clip points and ties) and two that round.
    for (double step : {0.375, 0.1, 0.0123}) {
      for (const auto& shape : TestShapes()) {
        SCOPED_TRACE(::testing::Message() << kernels::ActiveLsqKernels().isa << " step " << step
                                          << " shape " << at::IntArrayRef(shape));
        const torch::Tensor x = MakeInput(shape, dtype(), step, range(), ++seed);
        const torch::Tensor grad = Randn(shape, dtype(), ++seed);
        const RunOptions options{GradScale(x.numel())};
        const LsqResult fused = RunFused(x, step, range(), grad, options);
        const LsqResult ref = RunReference(x, step, range(), grad, options);
        EXPECT_TRUE(SameBits(fused.y, ref.y));
        EXPECT_TRUE(SameBits(fused.grad_x, ref.grad_x));
        const double scale = options.grad_scale *
                             (grad.to(torch::kDouble) * ExpectedStepDerivative(x, step, range()))
                                 .abs()
                                 .sum()
                                 .item<double>();
        EXPECT_NEAR(fused.grad_step.item<double>(), ref.grad_step.item<double>(),
                    Epsilon(dtype()) * (scale + 1e-30));
        EXPECT_EQ(fused.grad_step.sizes(), (std::vector<int64_t>{1}));
        EXPECT_EQ(fused.grad_step.scalar_type(), torch::kFloat);
      }
    }
  }
}

TEST_P(LsqParamTest, GradStepIsExactlyTheDoubleSumForIntegerGradients) {
  // x on a grid of s / 16 with s = 0.375: q = x / s is exact, every d is a multiple of 1/16, so
  // every product and every sum is exact, in any order. The grid covers both clip points.
  const double step = 0.375;
  const double lo = static_cast<double>(-range().qn), hi = static_cast<double>(range().qp);
  const std::vector<int64_t> shape = {3, 7, 41, 13};
  const torch::Tensor k =
      torch::randint(static_cast<int64_t>(16 * lo) - 40, static_cast<int64_t>(16 * hi) + 41, shape,
                     Rng(11), torch::dtype(torch::kDouble));
  const torch::Tensor x = (k * (step / 16)).to(dtype());
  const torch::Tensor grad = IntegerGrad(shape, dtype(), 12);
  const torch::Tensor products = grad.to(torch::kDouble) * ExpectedStepDerivative(x, step, range());
  const double expected = products.sum().item<double>();
  const double abs_sum = products.abs().sum().item<double>();
  for (double grad_scale : {1.0, 0.25}) {
    // A double step, so that dL/dstep keeps the exact double sum.
    const LsqResult fused = RunFused(x, step, range(), grad, {grad_scale, 0.0, torch::kDouble});
    EXPECT_EQ(fused.grad_step.item<double>(), grad_scale * expected);
    // dL/dx is the upstream gradient exactly on the strict inside (Eq. 5), else 0.
    EXPECT_TRUE(SameBits(fused.grad_x, torch::where(StrictlyInside(x, step, range()), grad,
                                                    torch::zeros_like(grad))));
    const LsqResult ref = RunReference(x, step, range(), grad, {grad_scale, 0.0, torch::kDouble});
    EXPECT_NEAR(ref.grad_step.item<double>(), grad_scale * expected, Epsilon(dtype()) * abs_sum);
  }
  // The unscaled sum from the kernel entry point, rounded to x's dtype.
  EXPECT_EQ(LsqBackwardKernel(grad, x, step, range()).second.item<double>(),
            InDtype(expected, dtype()));
}

TEST_P(LsqParamTest, MatchesThePythonFormulationAwayFromTheClipPoints) {
  const double step = 0.1;
  const std::vector<int64_t> shape = {4, 999};
  torch::Tensor x = MakeInput(shape, dtype(), step, range(), 21);
  x.view({-1}).slice(0, 0, 32).normal_(0.0, 1.0, Rng(20));  // no special values here
  // Keep every x / s at least 0.01 from -Qn and Qp: there the formulations differ by design
  // (see BoundariesFollowEquations3And5). Keep it from ties between levels too: the Python
  // formulation's (s - s * g) + s * g may be an ulp away from s, which could round a tie the
  // other way.
  const torch::Tensor q = x / InDtype(step, dtype());
  const torch::Tensor near_clip = ((q + static_cast<double>(range().qn)).abs() < 0.01) |
                                  ((q - static_cast<double>(range().qp)).abs() < 0.01);
  const torch::Tensor near_tie = ((q - torch::floor(q)) - 0.5).abs() < 0.01;
  x = torch::where(near_clip | near_tie, x + 0.05 * step, x);
  const torch::Tensor grad = Randn(shape, dtype(), 22);
  const double grad_scale = GradScale(x.numel());
  const LsqResult fused = RunFused(x, step, range(), grad, {grad_scale, 0.0, dtype()});
  const LsqResult python = RunPythonFormulation(x, step, range(), grad, grad_scale);
  const double tol = dtype() == torch::kFloat ? 1e-5 : 1e-12;
  EXPECT_TRUE(torch::allclose(fused.y, python.y, tol, tol));
  EXPECT_TRUE(torch::allclose(fused.grad_x, python.grad_x, tol, tol));
  EXPECT_NEAR(
      fused.grad_step.item<double>(), python.grad_step.item<double>(),
      (dtype() == torch::kFloat ? 1e-4 : 1e-10) * (1 + std::abs(python.grad_step.item<double>())));
}

TEST_P(LsqParamTest, OutputHasAtMostQnPlusQpPlusOneLevelsOnTheStepGrid) {
  const double step = 0.1;
  const torch::Tensor x = MakeInput({20000}, dtype(), step, range(), 31) * 1.5;
  torch::NoGradGuard no_grad;
  const torch::Tensor y =
      Lsq(x, torch::full({1}, step, torch::dtype(dtype())), range(), 1.0).to(torch::kDouble);
  // Every level k * s, computed in x's dtype as the op computes it.
  const double s = InDtype(step, dtype());
  std::set<double> levels;
  for (int64_t k = -range().qn; k <= range().qp; ++k) {
    levels.insert(InDtype(static_cast<double>(k) * s, dtype()));
  }
  std::set<double> distinct;
  const double* p = y.data_ptr<double>();
  for (int64_t i = 0; i < y.numel(); ++i) {
    ASSERT_EQ(levels.count(p[i]), 1u) << "y = " << p[i] << " at " << i;
    distinct.insert(p[i]);
  }
  EXPECT_LE(distinct.size(), static_cast<size_t>(range().qn + range().qp + 1));
  EXPECT_EQ(*distinct.begin(), InDtype(static_cast<double>(-range().qn) * s, dtype()));
  EXPECT_EQ(*distinct.rbegin(), InDtype(static_cast<double>(range().qp) * s, dtype()));
}

TEST_P(LsqParamTest, DeterministicAcrossRunsThreadCountsAndKernelIsas) {
  ScopedThreadsAndIsa restore;
  const std::vector<int64_t> shape = {(1 << 19) + 777};
  const double step = 0.0123;
  const torch::Tensor x = MakeInput(shape, dtype(), step, range(), 41);
  const torch::Tensor grad = Randn(shape, dtype(), 42);
  at::set_num_threads(1);
  const LsqResult first = RunFused(x, step, range(), grad);
  torch::Tensor xv = x.clone().requires_grad_(true);
  torch::Tensor sv = torch::full({1}, step).requires_grad_(true);
  Lsq(xv, sv, range(), 1.0).sum().backward();  // a broadcast gradient
  const torch::Tensor first_broadcast = sv.grad().clone();
  for (kernels::KernelIsa isa : kernels::SupportedKernelIsas()) {
    ASSERT_TRUE(kernels::SetKernelIsa(isa));
    for (int threads : {1, 2, 2}) {
      SCOPED_TRACE(::testing::Message()
                   << kernels::ActiveLsqKernels().isa << " threads " << threads);
      at::set_num_threads(threads);
      const LsqResult again = RunFused(x, step, range(), grad);
      EXPECT_TRUE(SameBits(first.y, again.y));
      EXPECT_TRUE(SameBits(first.grad_x, again.grad_x));
      EXPECT_TRUE(SameBits(first.grad_step, again.grad_step));
      sv.mutable_grad().reset();
      Lsq(xv, sv, range(), 1.0).sum().backward();
      EXPECT_TRUE(SameBits(first_broadcast, sv.grad()));
    }
  }
}

std::vector<LsqParam> AllParams() {
  std::vector<LsqParam> params;
  for (int64_t bits : {1, 2, 3, 4, 8}) {
    for (bool is_signed : {false, true}) {
      if (is_signed && bits == 1) continue;  // a signed range needs two bits
      for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
        params.emplace_back(bits, is_signed, dtype);
      }
    }
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(BitsSignsAndDtypes, LsqParamTest, ::testing::ValuesIn(AllParams()),
                         [](const ::testing::TestParamInfo<LsqParam>& info) {
                           return std::string(std::get<1>(info.param) ? "s" : "u") +
                                  std::to_string(std::get<0>(info.param)) +
                                  (std::get<2>(info.param) == torch::kFloat ? "_f32" : "_f64");
                         });

// ------------------------------------------------------------------------------------------
// Edge cases.

TEST(LsqTest, BoundariesFollowEquations3And5) {
  // Unsigned 2 bits (Qn = 0, Qp = 3), s = 0.5; the gradients are distinct powers of two, so
  // the step's sum is exact.
  const float below_qp = std::nextafter(1.5f, 0.0f);  // q just inside Qp
  const torch::Tensor x = torch::tensor({-1.0f, 0.0f, 0.2f, 0.75f, 1.5f, below_qp, 2.0f});
  const torch::Tensor grad = torch::tensor({1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f});
  const LsqResult r = RunFused(x, 0.5, LsqUnsignedRange(2), grad);
  EXPECT_TRUE(SameBits(r.y, torch::tensor({0.0f, 0.0f, 0.0f, 1.0f, 1.5f, 1.5f, 1.5f})));
  // x <= 0 (q <= -Qn) and q >= Qp pass nothing to x; q == Qp exactly is outside (Eq. 5).
  EXPECT_TRUE(SameBits(r.grad_x, torch::tensor({0.0f, 0.0f, 4.0f, 8.0f, 0.0f, 32.0f, 0.0f})));
  // d: -Qn = 0, 0, r - q = 0 - 0.4, 2 - 1.5 (a tie rounds to even), Qp, 3 - q, Qp (Eq. 3).
  const double q_below = static_cast<double>(below_qp / 0.5f);
  const double q_02 = static_cast<double>(0.2f / 0.5f);
  const double expected =
      4.0 * (0.0 - q_02) + 8.0 * 0.5 + 16.0 * 3.0 + 32.0 * (3.0 - q_below) + 64.0 * 3.0;
  EXPECT_EQ(r.grad_step.item<float>(), static_cast<float>(expected));

  // Signed 3 bits (Qn = 4, Qp = 3), s = 0.5: q == -Qn passes -Qn to the step and nothing to x.
  const float above_qn = std::nextafter(-2.0f, 0.0f);
  const torch::Tensor xs = torch::tensor({-3.0f, -2.0f, above_qn, -0.2f, -0.0f});
  const LsqResult rs = RunFused(xs, 0.5, LsqSignedRange(3), torch::ones({5}));
  EXPECT_TRUE(SameBits(rs.y, torch::tensor({-2.0f, -2.0f, -2.0f, -0.0f, -0.0f})));
  EXPECT_TRUE(SameBits(rs.grad_x, torch::tensor({0.0f, 0.0f, 1.0f, 1.0f, 1.0f})));
  const double q_above = static_cast<double>(above_qn / 0.5f);
  const double q_m02 = static_cast<double>(-0.2f / 0.5f);
  EXPECT_EQ(rs.grad_step.item<float>(),
            static_cast<float>(-4.0 - 4.0 + (-4.0 - q_above) + (-0.0 - q_m02) + 0.0));

  // The clamp-based Python formulation differs exactly at the clip points: clamp's autograd
  // passes the gradient to x there (inclusive bounds) and gives the step 0 instead of Qp.
  const LsqResult python =
      RunPythonFormulation(torch::tensor({1.5f}), 0.5, LsqUnsignedRange(2), torch::ones({1}), 1.0);
  const LsqResult fused =
      RunFused(torch::tensor({1.5f}), 0.5, LsqUnsignedRange(2), torch::ones({1}));
  EXPECT_EQ(python.grad_x.item<float>(), 1.0f);
  EXPECT_EQ(python.grad_step.item<float>(), 0.0f);
  EXPECT_EQ(fused.grad_x.item<float>(), 0.0f);
  EXPECT_EQ(fused.grad_step.item<float>(), 3.0f);
}

TEST(LsqTest, NanInputGivesNanOutputAndNoGradient) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    for (LsqRange range : {LsqUnsignedRange(4), LsqSignedRange(4)}) {
      SCOPED_TRACE(::testing::Message() << "dtype " << dtype << " qn " << range.qn);
      const double nan = std::numeric_limits<double>::quiet_NaN();
      const torch::Tensor x = torch::tensor({nan, 1.0, 50.0, nan, -0.3}, torch::dtype(dtype));
      const torch::Tensor grad = torch::full({5}, 3.0, torch::dtype(dtype));
      const LsqResult r = RunFused(x, 0.25, range, grad);
      EXPECT_TRUE(std::isnan(r.y[0].item<double>()));
      EXPECT_TRUE(std::isnan(r.y[3].item<double>()));
      EXPECT_EQ(r.grad_x[0].item<double>(), 0.0);
      EXPECT_EQ(r.grad_x[3].item<double>(), 0.0);
      EXPECT_EQ(r.grad_x[1].item<double>(), 3.0);
      // The NaN elements add nothing to the step: 3 * (Qp + d(-0.3)).
      const double d_last = range.qn == 0 ? 0.0 : -1.0 - InDtype(-0.3, dtype) / 0.25;
      EXPECT_NEAR(r.grad_step.item<double>(), 3.0 * (range.qp + d_last), 1e-5);
      const LsqResult ref = RunReference(x, 0.25, range, grad);
      EXPECT_TRUE(SameBits(r.y, ref.y));
      EXPECT_TRUE(SameBits(r.grad_x, ref.grad_x));
      EXPECT_TRUE(torch::allclose(r.grad_step, ref.grad_step));
    }
  }
}

TEST(LsqTest, MaskedOutGradientsAreSelectedNotMultiplied) {
  ScopedThreadsAndIsa restore;
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Outside below, NaN x, exactly on a level inside (d == 0), inside (d != 0), outside above;
  // then 9 more elements so the vector loops see them too.
  std::vector<float> xs = {-1.0f, nan, 0.5f, 0.3f, 9.0f};
  std::vector<float> gs = {inf, nan, inf, 2.0f, 1.0f};
  for (int i = 0; i < 9; ++i) {
    xs.push_back(xs[i % 5]);
    gs.push_back(gs[i % 5]);
  }
  const torch::Tensor x = torch::tensor(xs);
  const torch::Tensor grad = torch::tensor(gs);
  for (kernels::KernelIsa isa : kernels::SupportedKernelIsas()) {
    ASSERT_TRUE(kernels::SetKernelIsa(isa));
    SCOPED_TRACE(kernels::ActiveLsqKernels().isa);
    const LsqResult r = RunFused(x, 0.25, LsqUnsignedRange(3), grad);
    for (int64_t i = 0; i < x.numel(); ++i) {
      // Inside, dL/dx is the upstream gradient, inf included (Eq. 5); elsewhere exactly 0.
      EXPECT_EQ(r.grad_x[i].item<float>(), i % 5 == 2 ? inf : i % 5 == 3 ? 2.0f : 0.0f) << i;
    }
    // Only the inside elements with d != 0 (d = 1 - 1.2, three of them) and those above
    // (d = Qp = 7, two) add to the step; the inf at q == 2 adds 0, not inf * 0.
    const double d_inside = 1.0 - static_cast<double>(0.3f / 0.25f);
    EXPECT_FLOAT_EQ(r.grad_step.item<float>(), 3 * (2.0 * d_inside) + 2 * 7.0);
    const LsqResult ref = RunReference(x, 0.25, LsqUnsignedRange(3), grad);
    EXPECT_TRUE(SameBits(r.grad_x, ref.grad_x));
    EXPECT_FLOAT_EQ(ref.grad_step.item<float>(), r.grad_step.item<float>());
  }
}

TEST(LsqTest, EmptyTensors) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    const torch::Tensor x = torch::empty({0, 3}, torch::dtype(dtype));
    const LsqResult r =
        RunFused(x, 0.5, LsqSignedRange(4), torch::empty({0, 3}, torch::dtype(dtype)));
    EXPECT_EQ(r.y.sizes(), x.sizes());
    EXPECT_EQ(r.grad_x.sizes(), x.sizes());
    EXPECT_EQ(r.grad_step.item<double>(), 0.0);
  }
}

TEST(LsqTest, NonContiguousInputsMatchReference) {
  const LsqRange range = LsqUnsignedRange(4);
  const torch::Tensor base = MakeInput({6, 8, 10, 12}, torch::kFloat, 0.2, range, 51);
  const std::vector<std::pair<std::string, torch::Tensor>> inputs = {
      {"transposed", base.transpose(1, 3)},
      {"channels_last", base.contiguous(torch::MemoryFormat::ChannelsLast)},
      {"strided_slice", base.slice(/*dim=*/3, 0, 12, 3)},
      {"expanded", base.select(0, 0).unsqueeze(0).expand({4, 8, 10, 12})},
  };
  for (const auto& [name, x] : inputs) {
    SCOPED_TRACE(name);
    const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 52);
    const LsqResult fused = RunFused(x, 0.2, range, grad);
    const LsqResult ref = RunReference(x.contiguous(), 0.2, range, grad);
    EXPECT_TRUE(SameBits(fused.y, ref.y));
    EXPECT_TRUE(SameBits(fused.grad_x, ref.grad_x));
    EXPECT_TRUE(torch::allclose(fused.grad_step, ref.grad_step, 1e-5, 1e-4));
    if (x.is_non_overlapping_and_dense()) {
      EXPECT_EQ(fused.y.strides(), x.strides());
      EXPECT_EQ(fused.grad_x.strides(), x.strides());
    }
  }
  // Upstream gradients in another layout than x's.
  const torch::Tensor x = base.contiguous(torch::MemoryFormat::ChannelsLast);
  const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 53);
  const LsqResult fused =
      RunFused(x, 0.2, range, grad.transpose(0, 1).contiguous().transpose(0, 1));
  const LsqResult ref = RunReference(x.contiguous(), 0.2, range, grad);
  EXPECT_TRUE(SameBits(fused.grad_x, ref.grad_x));
}

TEST(LsqTest, BroadcastGradientFromSumMatchesOnes) {
  const LsqRange range = LsqSignedRange(3);
  const torch::Tensor x = MakeInput({3, 4001}, torch::kFloat, 0.3, range, 61);
  torch::Tensor xv = x.clone().requires_grad_(true);
  torch::Tensor sv = torch::full({1}, 0.3f).requires_grad_(true);
  Lsq(xv, sv, range, 0.5).sum().backward();
  const LsqResult ones = RunFused(x, 0.3, range, torch::ones_like(x), {0.5});
  EXPECT_TRUE(SameBits(xv.grad(), ones.grad_x));
  EXPECT_TRUE(SameBits(sv.grad(), ones.grad_step));
}

TEST(LsqTest, StepGuardClampsForwardButGradientReachesStep) {
  const LsqRange range = LsqUnsignedRange(4);
  const torch::Tensor x = MakeInput({1000}, torch::kFloat, 0.25, range, 71);
  const torch::Tensor grad = IntegerGrad({1000}, torch::kFloat, 72);
  const double step_min = 0.25;
  const LsqResult guarded = RunFused(x, /*step=*/0.01, range, grad, {1.0, step_min});
  const LsqResult at_min = RunFused(x, /*step=*/0.25, range, grad);
  EXPECT_TRUE(SameBits(guarded.y, at_min.y));
  EXPECT_TRUE(SameBits(guarded.grad_x, at_min.grad_x));
  EXPECT_TRUE(SameBits(guarded.grad_step, at_min.grad_step));
  EXPECT_NE(guarded.grad_step.item<float>(), 0.0f);
  const LsqResult ref = RunReference(x, 0.01, range, grad, {1.0, step_min});
  EXPECT_TRUE(SameBits(guarded.y, ref.y));
  EXPECT_TRUE(SameBits(guarded.grad_x, ref.grad_x));
  // A NaN step takes step_min as well.
  const LsqResult nan_step =
      RunFused(x, std::numeric_limits<double>::quiet_NaN(), range, grad, {1.0, step_min});
  EXPECT_TRUE(SameBits(nan_step.y, at_min.y));
  // A double step with float x: the forward rounds it to float; the gradient comes back double.
  const LsqResult double_step = RunFused(x, 0.25, range, grad, {1.0, 0.0, torch::kDouble});
  EXPECT_TRUE(SameBits(double_step.y, at_min.y));
  EXPECT_EQ(double_step.grad_step.scalar_type(), torch::kDouble);
  EXPECT_EQ(static_cast<float>(double_step.grad_step.item<double>()),
            at_min.grad_step.item<float>());
}

TEST(LsqTest, GradScaleIsAppliedExactly) {
  const LsqRange range = LsqSignedRange(4);
  const torch::Tensor x = MakeInput({40, 333}, torch::kFloat, 0.07, range, 73);
  const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 74);
  const LsqResult one = RunFused(x, 0.07, range, grad, {1.0});
  const LsqResult quarter = RunFused(x, 0.07, range, grad, {0.25});
  EXPECT_EQ(quarter.grad_step.item<float>(), 0.25f * one.grad_step.item<float>());
  EXPECT_NE(one.grad_step.item<float>(), 0.0f);
  EXPECT_TRUE(SameBits(quarter.grad_x, one.grad_x));  // the scale is the step's only
  EXPECT_TRUE(SameBits(quarter.y, one.y));
}

TEST(LsqTest, NoGradForwardMatchesAutogradForward) {
  const LsqRange range = LsqUnsignedRange(3);
  const torch::Tensor x = MakeInput({5, 777}, torch::kFloat, 0.3, range, 81);
  const LsqResult r = RunFused(x, 0.3, range, torch::ones_like(x));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(SameBits(Lsq(x, torch::full({1}, 0.3f), range, 1.0), r.y));
  EXPECT_TRUE(SameBits(LsqForwardKernel(x, 0.3, range), r.y));
}

TEST(LsqTest, KernelEntryPointsMatchTheOp) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    const LsqRange range = LsqSignedRange(5);
    const torch::Tensor x = MakeInput({9, 1111}, dtype, 0.05, range, 91);
    const torch::Tensor grad = Randn(x.sizes(), dtype, 92);
    const LsqResult r = RunFused(x, 0.05, range, grad, {0.125, 0.0, torch::kDouble});
    EXPECT_TRUE(SameBits(LsqForwardKernel(x, 0.05, range), r.y));
    const auto [grad_x, sum] = LsqBackwardKernel(grad, x, 0.05, range);
    EXPECT_TRUE(SameBits(grad_x, r.grad_x));
    EXPECT_EQ(sum.dim(), 0);
    EXPECT_EQ(sum.scalar_type(), dtype);
    // The op scales the double sum (exactly, by 1/8, into a double step); the kernel entry point
    // returns it unscaled in x's dtype.
    EXPECT_EQ(sum.item<double>(), InDtype(r.grad_step.item<double>() * 8, dtype));
  }
}

TEST(LsqTest, TrainingStepsReuseTheirOutputBuffers) {
  // y and dL/dx come from the buffer cache (buffer_cache.h): once a step has run, the same step
  // allocates no new large block.
  EmptyBufferCache();
  const LsqRange range = LsqUnsignedRange(4);
  const torch::Tensor x = MakeInput({64, 4096}, torch::kFloat, 0.2, range, 83).requires_grad_(true);
  const torch::Tensor step = torch::full({1}, 0.2f).requires_grad_(true);
  const torch::Tensor grad = Randn(x.sizes(), torch::kFloat, 84);
  const auto train_step = [&] {
    torch::Tensor y = Lsq(x, step, range, 0.01);
    y.backward(grad);
    x.mutable_grad().reset();
    step.mutable_grad().reset();
  };
  train_step();
  const BufferCacheStats before = GetBufferCacheStats();
  for (int i = 0; i < 3; ++i) train_step();
  const BufferCacheStats after = GetBufferCacheStats();
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.hits - before.hits, 3 * 2);  // y and dL/dx, 1 MiB each
}

TEST(LsqTest, ComposedFallbackForHalfAndBFloat16) {
  for (torch::ScalarType dtype : {torch::kHalf, torch::kBFloat16}) {
    SCOPED_TRACE(::testing::Message() << dtype);
    const LsqRange range = LsqSignedRange(4);
    const torch::Tensor x = MakeInput({4, 300}, torch::kFloat, 0.25, range, 101).to(dtype);
    const torch::Tensor grad = IntegerGrad(x.sizes(), dtype, 102);
    const LsqResult fused = RunFused(x, 0.25, range, grad);
    EXPECT_EQ(fused.y.scalar_type(), dtype);
    EXPECT_EQ(fused.grad_x.scalar_type(), dtype);
    // The reference needs round(), which ATen 1.13 lacks for half on the CPU.
    if (dtype == torch::kBFloat16) {
      const LsqResult ref = RunReference(x, 0.25, range, grad);
      EXPECT_TRUE(SameBits(fused.y, ref.y));
      EXPECT_TRUE(SameBits(fused.grad_x, ref.grad_x));
      EXPECT_TRUE(torch::allclose(fused.grad_step, ref.grad_step, 1e-2, 1e-2))
          << fused.grad_step.item<double>() << " vs " << ref.grad_step.item<double>();
    }
    // The same values as the float kernels, where x and s are exact in both (s = 1/4).
    const LsqResult in_float = RunFused(x.to(torch::kFloat), 0.25, range, grad.to(torch::kFloat));
    EXPECT_TRUE(torch::equal(fused.y.to(torch::kFloat), in_float.y));
    EXPECT_TRUE(torch::equal(fused.grad_x.to(torch::kFloat), in_float.grad_x));
    EXPECT_EQ(fused.grad_step.item<float>(), in_float.grad_step.item<float>());
  }
}

TEST(LsqTest, DoubleAndFloatAgreeWhereBothAreExact) {
  const LsqRange range = LsqUnsignedRange(8);
  // x on a grid of s / 8 with s = 0.125, so x, q and every d are exact in float and double.
  const torch::Tensor k =
      torch::randint(-100, 2200, {5000}, Rng(111), torch::dtype(torch::kDouble));
  const torch::Tensor xd = k / 64.0;
  const torch::Tensor grad = IntegerGrad({5000}, torch::kDouble, 112);
  const LsqResult d = RunFused(xd, 0.125, range, grad, {1.0, 0.0, torch::kDouble});
  const LsqResult f = RunFused(xd.to(torch::kFloat), 0.125, range, grad.to(torch::kFloat),
                               {1.0, 0.0, torch::kDouble});
  EXPECT_TRUE(torch::equal(d.y, f.y.to(torch::kDouble)));
  EXPECT_TRUE(torch::equal(d.grad_x, f.grad_x.to(torch::kDouble)));
  EXPECT_EQ(d.grad_step.item<double>(), f.grad_step.item<double>());
}

TEST(LsqTest, InitialStepIsTwiceTheMeanAbsOverSqrtQp) {
  EXPECT_EQ(LsqInitialStep(torch::tensor({-1.0f, 2.0f, -3.0f, 6.0f}), 4), 3.0);  // 2 * 3 / 2
  EXPECT_DOUBLE_EQ(LsqInitialStep(torch::tensor({0.5, -0.5}), 15), 1.0 / std::sqrt(15.0));
  // In double: float(0.1)'s exact value, not 0.1.
  EXPECT_EQ(LsqInitialStep(torch::full({5, 3}, -0.1f), 4), static_cast<double>(0.1f));
}

TEST(LsqTest, RejectsBadArguments) {
  const torch::Tensor x = torch::ones({3});
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  EXPECT_THAT(message([] { LsqUnsignedRange(0); }), HasSubstr("unsigned bits must be in [1, 16]"));
  EXPECT_THAT(message([] { LsqUnsignedRange(17); }), HasSubstr("unsigned bits must be in [1, 16]"));
  EXPECT_THAT(message([] { LsqSignedRange(1); }), HasSubstr("signed bits must be in [2, 16]"));
  EXPECT_THAT(message([] { LsqSignedRange(17); }), HasSubstr("signed bits must be in [2, 16]"));
  const LsqRange range = LsqUnsignedRange(4);
  EXPECT_THAT(message([&] { Lsq(x, torch::zeros({1}), range, 1.0); }),
              HasSubstr("step must be > 0"));
  EXPECT_THAT(message([&] { Lsq(x, -torch::ones({1}), range, 1.0); }),
              HasSubstr("step must be > 0"));
  EXPECT_THAT(message([&] { Lsq(x, torch::full({1}, std::nan("")), range, 1.0); }),
              HasSubstr("step must be > 0"));
  EXPECT_THAT(message([&] { Lsq(x, torch::ones({2}), range, 1.0); }), HasSubstr("one element"));
  EXPECT_THAT(message([&] {
                Lsq(x, torch::ones({1}), LsqRange{-1, 3}, 1.0);
              }),
              HasSubstr("LSQ range [-"));
  EXPECT_THAT(message([&] {
                Lsq(x, torch::ones({1}), LsqRange{0, 0}, 1.0);
              }),
              HasSubstr("at least two levels"));
  EXPECT_THAT(message([&] { Lsq(x, torch::ones({1}), range, kInf); }),
              HasSubstr("grad_scale must be finite"));
  EXPECT_THAT(message([&] { LsqBackwardKernel(torch::ones({4}), x, 1.0, range); }),
              HasSubstr("does not match"));
  EXPECT_THAT(message([&] { LsqInitialStep(torch::empty({0}), 3); }), HasSubstr("non-empty"));
}

}  // namespace
}  // namespace pact::quant
