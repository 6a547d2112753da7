// Tests of the fused BatchNorm2d + ReLU/PACT (+ residual) op against the composed modules.
#include "pact/quant/bn_act_ops.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/quant/kernel_test_util.h"
#include "pact/quant/pact_kernels.h"
#include "pact/quant/pact_ops.h"

namespace pact::quant {
namespace {

using ::testing::HasSubstr;

torch::Generator Rng(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

torch::Tensor Randn(at::IntArrayRef shape, torch::ScalarType dtype, uint64_t seed) {
  return torch::randn(shape, Rng(seed), torch::dtype(dtype));
}

// Small integers: every summation order gives the same, exact, result.
torch::Tensor IntegerGrad(at::IntArrayRef shape, torch::ScalarType dtype, uint64_t seed) {
  return torch::randint(-8, 9, shape, Rng(seed), torch::dtype(dtype));
}

// Normal inputs, except channel 1, whose mean is large relative to its spread: a one-pass
// E[x^2] - E[x]^2 without the shift would lose every digit of the variance there.
torch::Tensor MakeInput(at::IntArrayRef shape, torch::ScalarType dtype, uint64_t seed) {
  torch::Tensor x = Randn(shape, dtype, seed) * 1.5 + 0.3;
  torch::NoGradGuard no_grad;
  torch::Tensor c1 = x.select(1, 1);
  if (dtype == torch::kDouble) {
    c1.mul_(0.01).add_(1000.0);
  } else {
    c1.mul_(0.1).add_(50.0);
  }
  return x;
}

struct ActCase {
  bool pact = false;
  int64_t bits = 0;
  double alpha = 1.5;
  double alpha_min = 0.0;
};

std::string Describe(const ActCase& act) {
  return act.pact ? "pact" + std::to_string(act.bits) : "relu";
}

std::vector<ActCase> AllActivations() {
  std::vector<ActCase> acts = {ActCase{}};
  for (int64_t bits : {0, 2, 4, 8}) acts.push_back(ActCase{true, bits, 1.5, 0.01});
  return acts;
}

// The op's modules and the reference's: two BatchNorm2d with identical parameters and buffers
// (num_batches_tracked included), so both can be stepped side by side.
struct BnPair {
  torch::nn::BatchNorm2d op{nullptr};
  torch::nn::BatchNorm2d ref{nullptr};
};

BnPair MakeBnPair(const torch::nn::BatchNorm2dOptions& options, torch::ScalarType dtype,
                  uint64_t seed) {
  BnPair pair{torch::nn::BatchNorm2d(options), torch::nn::BatchNorm2d(options)};
  pair.op->to(dtype);
  pair.ref->to(dtype);
  torch::NoGradGuard no_grad;
  const int64_t c = options.num_features();
  // Non-trivial values everywhere, so a mixed-up parameter or buffer cannot go unnoticed.
  if (options.affine()) {
    pair.op->weight.copy_(torch::rand({c}, Rng(seed)) + 0.5);
    pair.op->bias.copy_(torch::randn({c}, Rng(seed + 1)) * 0.5);
  }
  if (options.track_running_stats()) {
    pair.op->running_mean.copy_(torch::randn({c}, Rng(seed + 2)));
    pair.op->running_var.copy_(torch::rand({c}, Rng(seed + 3)) + 0.5);
    pair.op->num_batches_tracked.fill_(3);
  }
  auto ref_params = pair.ref->named_parameters();
  for (const auto& p : pair.op->named_parameters()) ref_params[p.key()].copy_(p.value());
  auto ref_buffers = pair.ref->named_buffers();
  for (const auto& b : pair.op->named_buffers()) ref_buffers[b.key()].copy_(b.value());
  return pair;
}

BnPair MakeBnPair(int64_t channels, torch::ScalarType dtype, uint64_t seed) {
  return MakeBnPair(torch::nn::BatchNorm2dOptions(channels), dtype, seed);
}

struct Outputs {
  torch::Tensor y, grad_x, grad_weight, grad_bias, grad_alpha, grad_residual;
};

enum class Path { kOp, kReference };

// act(bn(x) + residual) with fresh leaves for x, residual and alpha; then, when `backward`,
// y.backward(grad), or y.sum().backward() when `grad` is undefined (the gradient then
// arrives expanded from a single value).
Outputs RunPath(Path path, torch::nn::BatchNorm2d& bn, const torch::Tensor& x,
                const torch::Tensor& residual, const ActCase& act, bool backward,
                const torch::Tensor& grad = {}) {
  // Views, not clones: a clone would make a non-dense x dense.
  const torch::Tensor xv = x.detach().requires_grad_(backward);
  const torch::Tensor rv =
      residual.defined() ? residual.detach().requires_grad_(backward) : torch::Tensor();
  const torch::Tensor av =
      torch::full({1}, act.alpha, torch::dtype(x.scalar_type())).requires_grad_(backward);
  for (torch::Tensor& p : bn->parameters()) p.mutable_grad() = torch::Tensor();
  torch::Tensor y;
  if (path == Path::kOp) {
    FusedActivation fa;
    fa.kind = act.pact ? FusedActivation::Kind::kPact : FusedActivation::Kind::kRelu;
    fa.alpha = av;
    fa.alpha_min = act.alpha_min;
    fa.bits = act.bits;
    y = BatchNormActivation(*bn, xv, rv, fa);
  } else {
    torch::Tensor z = bn->forward(xv);
    if (rv.defined()) z = z + rv;
    y = act.pact ? Pact(z, av, act.bits, act.alpha_min) : torch::relu(z);
  }
  Outputs out;
  out.y = y.detach();
  if (!backward) return out;
  if (grad.defined()) {
    y.backward(grad);
  } else {
    y.sum().backward();
  }
  out.grad_x = xv.grad();
  if (bn->options.affine()) {
    out.grad_weight = bn->weight.grad();
    out.grad_bias = bn->bias.grad();
  }
  if (act.pact) out.grad_alpha = av.grad();
  if (rv.defined()) out.grad_residual = rv.grad();
  return out;
}

// z = bn(x) + residual computed in double from the statistics the module normalizes with
// (the batch's, or the running ones in eval mode), and a per-element bound on how far two
// computations of z in x's dtype may differ: a few roundings of each term of
// x * scale + (bias - mean * scale) + residual.
struct ZReference {
  torch::Tensor z;
  torch::Tensor tol;
};

ZReference ReferenceZ(const torch::nn::BatchNorm2d& bn, const torch::Tensor& x,
                      const torch::Tensor& residual, bool batch_stats) {
  torch::NoGradGuard no_grad;
  auto channel = [](const torch::Tensor& t) { return t.to(torch::kDouble).view({1, -1, 1, 1}); };
  const torch::Tensor xd = x.to(torch::kDouble);
  const torch::Tensor mean =
      batch_stats ? xd.mean({0, 2, 3}, /*keepdim=*/true) : channel(bn->running_mean);
  const torch::Tensor var = batch_stats ? xd.var({0, 2, 3}, /*unbiased=*/false, /*keepdim=*/true)
                                        : channel(bn->running_var);
  const torch::Tensor scale = channel(bn->weight) / (var + bn->options.eps()).sqrt();
  ZReference r;
  r.z = (xd - mean) * scale + channel(bn->bias);
  torch::Tensor magnitude = (xd * scale).abs() + (mean * scale).abs() + channel(bn->bias).abs();
  if (residual.defined()) {
    r.z = r.z + residual.to(torch::kDouble);
    magnitude = magnitude + residual.to(torch::kDouble).abs();
  }
  const double eps = x.scalar_type() == torch::kFloat ? FLT_EPSILON : DBL_EPSILON;
  r.tol = 16 * eps * magnitude;
  return r;
}

double EffectiveAlpha(const ActCase& act, torch::ScalarType dtype) {
  const double a = std::max(act.alpha, act.alpha_min);
  return dtype == torch::kFloat ? static_cast<float>(a) : a;
}

// y matches y_ref up to the rounding of z. With quantization, a z within that rounding of the
// midpoint between two levels may legitimately round either way (the two BatchNorms differ in
// the last bit of their statistics), so there one level step of difference is accepted, for
// at most 1% of the elements; in double that window is a negligible fraction of a step, so no
// element may use it.
void ExpectForwardClose(const torch::Tensor& y, const torch::Tensor& y_ref, const ZReference& zr,
                        const ActCase& act) {
  ASSERT_EQ(y.sizes(), y_ref.sizes());
  ASSERT_EQ(y.scalar_type(), y_ref.scalar_type());
  const torch::Tensor diff = (y.to(torch::kDouble) - y_ref.to(torch::kDouble)).abs();
  const torch::Tensor close = diff <= zr.tol;
  torch::Tensor ok = close;
  if (act.pact && act.bits > 0 && y.scalar_type() == torch::kFloat) {
    const double alpha = EffectiveAlpha(act, y.scalar_type());
    const double step = alpha / (std::ldexp(1.0, static_cast<int>(act.bits)) - 1.0);
    const torch::Tensor u = zr.z.clamp(0.0, alpha) / step;
    const torch::Tensor to_midpoint = (u - u.floor() - 0.5).abs() * step;
    const torch::Tensor flipped =
        ~close & ((diff - step).abs() <= zr.tol) & (to_midpoint <= zr.tol);
    ok = close | flipped;
    const int64_t flips = flipped.sum().item<int64_t>();
    EXPECT_LE(flips, std::max<int64_t>(2, y.numel() / 100)) << "one-step flips at midpoints";
  }
  EXPECT_TRUE(ok.all().item<bool>())
      << (~ok).sum().item<int64_t>() << " of " << y.numel() << " elements differ; max |diff| "
      << diff.max().item<double>() << ", max |diff| / tol " << (diff / zr.tol).max().item<double>();
}

// Gradients: double to 1e-9 of the largest element of the composed modules' gradient; float
// to 1e-4 (sums run in other orders, and the BatchNorm input gradient cancels). With tiny M and
// a large-mean channel, x - mean keeps few digits in float and the composed modules are
// themselves further than that from the exact gradient; there `truth` (the composed modules
// in double on the same inputs) decides: the op must be at least about as accurate.
void ExpectGradsClose(const Outputs& got, const Outputs& want, const Outputs* truth = nullptr) {
  const std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor, torch::Tensor>> grads = {
      {"x", got.grad_x, want.grad_x, truth ? truth->grad_x : torch::Tensor()},
      {"weight", got.grad_weight, want.grad_weight, truth ? truth->grad_weight : torch::Tensor()},
      {"bias", got.grad_bias, want.grad_bias, truth ? truth->grad_bias : torch::Tensor()},
      {"alpha", got.grad_alpha, want.grad_alpha, truth ? truth->grad_alpha : torch::Tensor()},
      {"residual", got.grad_residual, want.grad_residual,
       truth ? truth->grad_residual : torch::Tensor()}};
  for (const auto& [name, a, b, exact] : grads) {
    SCOPED_TRACE("grad " + name);
    ASSERT_EQ(a.defined(), b.defined());
    if (!b.defined()) continue;
    ASSERT_EQ(a.sizes(), b.sizes());
    ASSERT_EQ(a.scalar_type(), b.scalar_type());
    const double rtol = a.scalar_type() == torch::kFloat ? 1e-4 : 1e-9;
    const double atol = rtol * b.abs().max().item<double>();
    if (torch::allclose(a, b, rtol, atol)) continue;
    const double diff = (a - b).abs().max().item<double>();
    ASSERT_TRUE(exact.defined()) << "max |diff| " << diff << ", max |ref| "
                                 << b.abs().max().item<double>();
    auto error = [&](const torch::Tensor& t) {
      return (t.to(torch::kDouble) - exact).abs().max().item<double>();
    };
    EXPECT_LE(error(a), 2 * error(b)) << "max |diff| to the composed float result " << diff;
  }
}

// Running statistics close, num_batches_tracked equal; both undefined without tracking.
void ExpectSameBuffers(const torch::nn::BatchNorm2d& op, const torch::nn::BatchNorm2d& ref) {
  auto op_buffers = op->named_buffers();
  for (const auto& b : ref->named_buffers()) {
    SCOPED_TRACE(b.key());
    const torch::Tensor& got = op_buffers[b.key()];
    ASSERT_EQ(got.defined(), b.value().defined());
    if (!got.defined()) continue;
    if (b.key() == "num_batches_tracked") {
      EXPECT_TRUE(torch::equal(got, b.value())) << got << " vs " << b.value();
    } else {
      const double tol = got.scalar_type() == torch::kFloat ? 1e-5 : 1e-12;
      EXPECT_TRUE(torch::allclose(got, b.value(), tol, tol, /*equal_nan=*/true))
          << got << " vs " << b.value();
    }
  }
}

bool SameOutputs(const Outputs& a, const Outputs& b) {
  auto same = [](const torch::Tensor& s, const torch::Tensor& t) {
    return s.defined() == t.defined() && (!s.defined() || torch::equal(s, t));
  };
  return same(a.y, b.y) && same(a.grad_x, b.grad_x) && same(a.grad_weight, b.grad_weight) &&
         same(a.grad_bias, b.grad_bias) && same(a.grad_alpha, b.grad_alpha) &&
         same(a.grad_residual, b.grad_residual);
}

// The composed modules in double on the same (float) inputs and parameters.
Outputs DoubleReference(int64_t channels, uint64_t seed, const torch::Tensor& x,
                        const torch::Tensor& residual, const ActCase& act,
                        const torch::Tensor& grad) {
  auto widen = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kDouble) : t; };
  BnPair bn = MakeBnPair(channels, torch::kDouble, seed);
  return RunPath(Path::kReference, bn.ref, widen(x), widen(residual), act, true, widen(grad));
}

class ScopedFusion {
 public:
  explicit ScopedFusion(bool enabled) : saved_(BatchNormActivationFusion()) {
    SetBatchNormActivationFusion(enabled);
  }
  ~ScopedFusion() { SetBatchNormActivationFusion(saved_); }

 private:
  bool saved_;
};

std::string Name(torch::ScalarType dtype) { return dtype == torch::kFloat ? "f32" : "f64"; }

// ------------------------------------------------------------------------------------------
// Training mode against the composed modules, per dtype.

class BnActTest : public ::testing::TestWithParam<torch::ScalarType> {
 protected:
  torch::ScalarType dtype() const { return GetParam(); }
};

TEST_P(BnActTest, TrainingMatchesComposed) {
  // Lane tails, odd planes, 1x1 planes, and the smallest batch (M = 2).
  const std::vector<std::vector<int64_t>> shapes = {
      {2, 3, 5, 7}, {4, 16, 8, 8}, {3, 5, 1, 1}, {1, 3, 2, 1}};
  uint64_t seed = 100;
  for (const auto& shape : shapes) {
    for (const ActCase& act : AllActivations()) {
      for (bool with_residual : {false, true}) {
        for (bool channels_last : {false, true}) {
          SCOPED_TRACE(::testing::Message() << at::IntArrayRef(shape) << " " << Describe(act)
                                            << (with_residual ? " +residual" : "")
                                            << (channels_last ? " channels_last" : ""));
          torch::Tensor x = MakeInput(shape, dtype(), ++seed);
          // The residual stays NCHW: a channels-last x then also needs it converted.
          const torch::Tensor residual =
              with_residual ? Randn(shape, dtype(), ++seed) * 0.5 : torch::Tensor();
          const torch::Tensor grad = Randn(shape, dtype(), ++seed);
          const uint64_t bn_seed = ++seed;
          BnPair bn = MakeBnPair(shape[1], dtype(), bn_seed);
          if (channels_last) {
            x = x.contiguous(torch::MemoryFormat::ChannelsLast);
          } else {
            ASSERT_TRUE(BatchNormActivationIsFused(*bn.op, x, residual));
          }
          const ZReference zr = ReferenceZ(bn.ref, x, residual, /*batch_stats=*/true);
          const Outputs got = RunPath(Path::kOp, bn.op, x, residual, act, true, grad);
          const Outputs want = RunPath(Path::kReference, bn.ref, x, residual, act, true, grad);
          ExpectForwardClose(got.y, want.y, zr, act);
          const Outputs exact = DoubleReference(shape[1], bn_seed, x, residual, act, grad);
          ExpectGradsClose(got, want, &exact);
          ExpectSameBuffers(bn.op, bn.ref);
        }
      }
    }
  }
}

TEST_P(BnActTest, SumBackwardMatchesComposed) {
  const std::vector<int64_t> shape = {2, 6, 9, 11};
  uint64_t seed = 200;
  for (const ActCase& act : AllActivations()) {
    SCOPED_TRACE(Describe(act));
    const torch::Tensor x = MakeInput(shape, dtype(), ++seed);
    const torch::Tensor residual = Randn(shape, dtype(), ++seed);
    const uint64_t bn_seed = ++seed;
    BnPair bn = MakeBnPair(shape[1], dtype(), bn_seed);
    const Outputs got = RunPath(Path::kOp, bn.op, x, residual, act, true);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, residual, act, true);
    ExpectForwardClose(got.y, want.y, ReferenceZ(bn.ref, x, residual, true), act);
    const Outputs exact = DoubleReference(shape[1], bn_seed, x, residual, act, {});
    ExpectGradsClose(got, want, &exact);
  }
}

TEST_P(BnActTest, GradAlphaIsTheSumOverZAtOrAboveAlpha) {
  const std::vector<int64_t> shape = {3, 4, 13, 10};
  const torch::Tensor x = MakeInput(shape, dtype(), 301);
  const torch::Tensor residual = Randn(shape, dtype(), 302);
  const torch::Tensor grad = IntegerGrad(shape, dtype(), 303);
  for (int64_t bits : {0, 4}) {
    SCOPED_TRACE(bits);
    const ActCase act{true, bits, 1.5, 0.01};
    BnPair bn = MakeBnPair(shape[1], dtype(), 304);
    const ZReference zr = ReferenceZ(bn.ref, x, residual, true);
    const Outputs got = RunPath(Path::kOp, bn.op, x, residual, act, true, grad);
    const double alpha = EffectiveAlpha(act, dtype());
    const torch::Tensor above = zr.z >= alpha;
    ASSERT_GT(above.sum().item<int64_t>(), 0);
    // Integer gradients make the sum exact in any order.
    EXPECT_EQ(got.grad_alpha.item<double>(),
              (grad.to(torch::kDouble) * above).sum().item<double>());
    // And the residual receives the upstream gradient exactly where 0 <= z < alpha.
    EXPECT_TRUE(torch::equal(got.grad_residual,
                             torch::where((zr.z >= 0) & ~above, grad, torch::zeros_like(grad))));
  }
}

TEST_P(BnActTest, RunningStatisticsFollowComposedOverSteps) {
  const std::vector<int64_t> shape = {4, 5, 6, 3};
  const ActCase relu;
  for (const c10::optional<double>& momentum :
       {c10::optional<double>(0.1), c10::optional<double>(c10::nullopt)}) {
    SCOPED_TRACE(momentum.has_value() ? "momentum 0.1" : "cumulative average");
    BnPair bn =
        MakeBnPair(torch::nn::BatchNorm2dOptions(shape[1]).momentum(momentum), dtype(), 401);
    {
      // The cumulative average restarts from the count; start it from zero as a fresh module.
      torch::NoGradGuard no_grad;
      bn.op->num_batches_tracked.zero_();
      bn.ref->num_batches_tracked.zero_();
    }
    for (int step = 0; step < 3; ++step) {
      SCOPED_TRACE(step);
      // The last step runs without autograd: the op's inference path updates them too.
      torch::AutoGradMode grad_mode(step != 2);
      const torch::Tensor x = MakeInput(shape, dtype(), 410 + step);
      RunPath(Path::kOp, bn.op, x, {}, relu, /*backward=*/step == 1);
      RunPath(Path::kReference, bn.ref, x, {}, relu, /*backward=*/step == 1);
      ExpectSameBuffers(bn.op, bn.ref);
    }
    EXPECT_EQ(bn.op->num_batches_tracked.item<int64_t>(), 3);
  }
}

TEST_P(BnActTest, WithoutRunningStatisticsBothModesUseTheBatch) {
  const std::vector<int64_t> shape = {3, 4, 5, 5};
  const ActCase act{true, 4, 1.5, 0.01};
  BnPair bn =
      MakeBnPair(torch::nn::BatchNorm2dOptions(shape[1]).track_running_stats(false), dtype(), 501);
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "train" : "eval");
    bn.op->train(training);
    bn.ref->train(training);
    const torch::Tensor x = MakeInput(shape, dtype(), 502);
    const torch::Tensor grad = Randn(shape, dtype(), 503);
    ASSERT_TRUE(BatchNormActivationIsFused(*bn.op, x, {}));
    const Outputs got = RunPath(Path::kOp, bn.op, x, {}, act, true, grad);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, {}, act, true, grad);
    ExpectForwardClose(got.y, want.y, ReferenceZ(bn.ref, x, {}, true), act);
    ExpectGradsClose(got, want);
    ExpectSameBuffers(bn.op, bn.ref);
  }
}

TEST_P(BnActTest, EvalWithoutGradMatchesComposed) {
  const std::vector<int64_t> shape = {2, 5, 7, 3};
  uint64_t seed = 600;
  for (const ActCase& act : AllActivations()) {
    SCOPED_TRACE(Describe(act));
    BnPair bn = MakeBnPair(shape[1], dtype(), ++seed);
    bn.op->eval();
    bn.ref->eval();
    const torch::Tensor x = Randn(shape, dtype(), ++seed);
    const torch::Tensor residual = Randn(shape, dtype(), ++seed);
    torch::NoGradGuard no_grad;
    ASSERT_TRUE(BatchNormActivationIsFused(*bn.op, x, residual));
    const Outputs got = RunPath(Path::kOp, bn.op, x, residual, act, false);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, residual, act, false);
    ExpectForwardClose(got.y, want.y, ReferenceZ(bn.ref, x, residual, false), act);
    ExpectSameBuffers(bn.op, bn.ref);
  }
}

TEST_P(BnActTest, EvalWithGradComposes) {
  const std::vector<int64_t> shape = {2, 5, 7, 3};
  const torch::Tensor x = Randn(shape, dtype(), 701);
  const torch::Tensor residual = Randn(shape, dtype(), 702);
  const torch::Tensor grad = Randn(shape, dtype(), 703);
  for (const ActCase& act : AllActivations()) {
    SCOPED_TRACE(Describe(act));
    BnPair bn = MakeBnPair(shape[1], dtype(), 704);
    bn.op->eval();
    bn.ref->eval();
    // The running statistics are constants of the composed graph, so its result, gradients
    // included, is reproduced bit for bit.
    const Outputs got = RunPath(Path::kOp, bn.op, x, residual, act, true, grad);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, residual, act, true, grad);
    EXPECT_TRUE(SameOutputs(got, want));
    EXPECT_GT(got.grad_x.abs().sum().item<double>(), 0.0);
    EXPECT_GT(got.grad_weight.abs().sum().item<double>(), 0.0);
    ExpectSameBuffers(bn.op, bn.ref);
  }
}

TEST_P(BnActTest, AlphaBelowMinimumClipsAtMinimumAndStillGetsGradient) {
  const std::vector<int64_t> shape = {2, 4, 6, 5};
  const torch::Tensor x = MakeInput(shape, dtype(), 801);
  const torch::Tensor grad = IntegerGrad(shape, dtype(), 802);
  for (int64_t bits : {0, 3}) {
    SCOPED_TRACE(bits);
    const ActCase act{true, bits, -1.0, 0.5};
    BnPair bn = MakeBnPair(shape[1], dtype(), 803);
    const ZReference zr = ReferenceZ(bn.ref, x, {}, true);
    const Outputs got = RunPath(Path::kOp, bn.op, x, {}, act, true, grad);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, {}, act, true, grad);
    ExpectForwardClose(got.y, want.y, zr, act);
    ExpectGradsClose(got, want);
    EXPECT_NEAR(got.y.max().item<double>(), 0.5, 1e-6);
    const double expected = (grad.to(torch::kDouble) * (zr.z >= 0.5)).sum().item<double>();
    EXPECT_NE(expected, 0.0);
    EXPECT_EQ(got.grad_alpha.item<double>(), expected);
  }
}

// Every sum runs in a fixed order: bitwise identical outputs and gradients for any thread
// count and either kernel build.
TEST_P(BnActTest, BitwiseDeterministicAcrossThreadsAndKernelIsas) {
  ScopedThreadsAndIsa restore;
  // 64 planes of 1024 (NHWC: 4096 pixels, 16 reduction blocks): several parallel tasks in
  // every pass.
  const std::vector<int64_t> shape = {4, 16, 32, 32};
  const torch::Tensor nchw = MakeInput(shape, dtype(), 901);
  const torch::Tensor residual = Randn(shape, dtype(), 902);
  const torch::Tensor grad = Randn(shape, dtype(), 903);
  const std::vector<kernels::KernelIsa> isas = kernels::SupportedKernelIsas();
  for (const torch::Tensor& x : {nchw, nchw.contiguous(torch::MemoryFormat::ChannelsLast)}) {
    for (const ActCase& act : {ActCase{}, ActCase{true, 4, 1.5, 0.01}}) {
      for (const torch::Tensor& g : {grad, torch::Tensor()}) {
        SCOPED_TRACE(Describe(act) + (g.defined() ? " randn grad" : " sum grad") +
                     (x.is_contiguous() ? "" : " channels_last"));
        Outputs first;
        torch::Tensor first_mean, first_var;
        for (kernels::KernelIsa isa : isas) {
          ASSERT_TRUE(kernels::SetKernelIsa(isa));
          for (int threads : {1, 2}) {
            SCOPED_TRACE(::testing::Message()
                         << kernels::ActiveKernels().isa << " threads " << threads);
            at::set_num_threads(threads);
            BnPair bn = MakeBnPair(shape[1], dtype(), 904);
            const Outputs out = RunPath(Path::kOp, bn.op, x, residual, act, true, g);
            if (!first.y.defined()) {
              first = out;
              first_mean = bn.op->running_mean.clone();
              first_var = bn.op->running_var.clone();
              continue;
            }
            EXPECT_TRUE(SameOutputs(out, first));
            EXPECT_TRUE(torch::equal(bn.op->running_mean, first_mean));
            EXPECT_TRUE(torch::equal(bn.op->running_var, first_var));
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, BnActTest, ::testing::Values(torch::kFloat, torch::kDouble),
                         [](const ::testing::TestParamInfo<torch::ScalarType>& info) {
                           return Name(info.param);
                         });

// ------------------------------------------------------------------------------------------
// Fallbacks: the op composes the modules, so the result equals the reference bit for bit.

TEST(BnActFallbackTest, DisabledFusionComposes) {
  ScopedFusion off(false);
  const std::vector<int64_t> shape = {2, 3, 5, 7};
  const torch::Tensor x = MakeInput(shape, torch::kFloat, 1001);
  const torch::Tensor residual = Randn(shape, torch::kFloat, 1002);
  for (const ActCase& act : AllActivations()) {
    SCOPED_TRACE(Describe(act));
    BnPair bn = MakeBnPair(shape[1], torch::kFloat, 1003);
    EXPECT_FALSE(BatchNormActivationIsFused(*bn.op, x, residual));
    const Outputs got = RunPath(Path::kOp, bn.op, x, residual, act, true);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, residual, act, true);
    EXPECT_TRUE(SameOutputs(got, want));
    ExpectSameBuffers(bn.op, bn.ref);
  }
}

TEST(BnActFallbackTest, NonDenseAndNonAffineCompose) {
  const std::vector<int64_t> shape = {2, 4, 5, 3};
  const torch::Tensor x = MakeInput(shape, torch::kFloat, 1101);
  const torch::Tensor grad = Randn(shape, torch::kFloat, 1102);
  const ActCase act{true, 4, 1.5, 0.01};
  {
    // Neither NCHW nor NHWC: H and W swapped in the strides.
    SCOPED_TRACE("transposed");
    const torch::Tensor xt = x.transpose(2, 3);
    BnPair bn = MakeBnPair(shape[1], torch::kFloat, 1103);
    EXPECT_FALSE(BatchNormActivationIsFused(*bn.op, xt, {}));
    const Outputs got = RunPath(Path::kOp, bn.op, xt, {}, act, true, grad.transpose(2, 3));
    const Outputs want = RunPath(Path::kReference, bn.ref, xt, {}, act, true, grad.transpose(2, 3));
    EXPECT_TRUE(SameOutputs(got, want));
    ExpectSameBuffers(bn.op, bn.ref);
  }
  {
    SCOPED_TRACE("affine(false)");
    BnPair bn =
        MakeBnPair(torch::nn::BatchNorm2dOptions(shape[1]).affine(false), torch::kFloat, 1104);
    EXPECT_FALSE(BatchNormActivationIsFused(*bn.op, x, {}));
    const Outputs got = RunPath(Path::kOp, bn.op, x, {}, act, true, grad);
    const Outputs want = RunPath(Path::kReference, bn.ref, x, {}, act, true, grad);
    EXPECT_TRUE(SameOutputs(got, want));
    ExpectSameBuffers(bn.op, bn.ref);
  }
}

std::string ErrorOf(Path path, torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  try {
    RunPath(path, bn, x, {}, ActCase{}, /*backward=*/false);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "no error";
}

TEST(BnActFallbackTest, ThreeDimensionalInputRaisesTheComposedError) {
  BnPair bn = MakeBnPair(3, torch::kFloat, 1201);
  const torch::Tensor x = Randn({2, 3, 5}, torch::kFloat, 1202);
  const std::string want = ErrorOf(Path::kReference, bn.ref, x);
  EXPECT_THAT(want, HasSubstr("expected 4D input"));
  EXPECT_EQ(ErrorOf(Path::kOp, bn.op, x), want);
}

TEST(BnActFallbackTest, SingleValuePerChannelInTrainingRaises) {
  BnPair bn = MakeBnPair(3, torch::kFloat, 1301);
  const torch::Tensor x = Randn({1, 3, 1, 1}, torch::kFloat, 1302);
  EXPECT_THAT(ErrorOf(Path::kReference, bn.ref, x),
              HasSubstr("Expected more than 1 value per channel when training"));
  EXPECT_THAT(ErrorOf(Path::kOp, bn.op, x),
              HasSubstr("Expected more than 1 value per channel when training"));
  ExpectSameBuffers(bn.op, bn.ref);
}

TEST(BnActTest, NanInputPropagatesLikeComposed) {
  const std::vector<int64_t> shape = {2, 3, 5, 7};
  torch::Tensor x = Randn(shape, torch::kFloat, 1401);
  x[1][2][3][4] = std::numeric_limits<float>::quiet_NaN();
  BnPair bn = MakeBnPair(shape[1], torch::kFloat, 1402);
  const Outputs got = RunPath(Path::kOp, bn.op, x, {}, ActCase{}, /*backward=*/false);
  const Outputs want = RunPath(Path::kReference, bn.ref, x, {}, ActCase{}, /*backward=*/false);
  // The NaN poisons its channel's statistics, so the whole channel is NaN.
  EXPECT_TRUE(torch::equal(got.y.isnan(), want.y.isnan()));
  EXPECT_TRUE(got.y.select(1, 2).isnan().all().item<bool>());
  EXPECT_FALSE(got.y.select(1, 0).isnan().any().item<bool>());
  EXPECT_TRUE(torch::allclose(got.y, want.y, 1e-5, 1e-5, /*equal_nan=*/true));
  ExpectSameBuffers(bn.op, bn.ref);
}

}  // namespace
}  // namespace pact::quant
