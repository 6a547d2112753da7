#include "pact/quant/bn_act_ops.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "pact/quant/pact_kernels.h"
#include "pact/quant/pact_ops.h"

namespace pact::quant {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<bool> g_fusion_enabled{true};

double SumLanes(const double* lanes) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// Elements per parallel task in the elementwise passes (ATen's grain).
constexpr int64_t kGrain = 32768;

// A dense 4-D tensor either in NCHW (planes of hw values per (sample, channel)) or in
// channels-last NHWC (rows of c values per pixel), the two layouts the kernels walk.
struct Layout {
  bool nhwc = false;
  int64_t n = 0, c = 0, hw = 0;
  int64_t rows() const { return n * hw; }
  torch::MemoryFormat format() const {
    return nhwc ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  }
  // NHWC: pixels per reduction block (about 4096 values); blocks are summed in order.
  int64_t block_rows() const { return std::max<int64_t>(1, 4096 / c); }
  int64_t blocks() const { return (rows() + block_rows() - 1) / block_rows(); }
};

Layout LayoutOf(const torch::Tensor& x) {
  return Layout{!x.is_contiguous(), x.size(0), x.size(1), x.size(2) * x.size(3)};
}

// An elementwise pass over l in parallel, in ATen-sized tasks: rows_fn(offset, rows) on runs of
// whole NHWC rows, or plane_fn(offset, channel) on each NCHW plane of hw values.
template <typename RowsFn, typename PlaneFn>
void ForEachElementwiseChunk(const Layout& l, const RowsFn& rows_fn, const PlaneFn& plane_fn) {
  const int64_t c = l.c;
  if (l.nhwc) {
    at::parallel_for(0, l.rows(), std::max<int64_t>(1, kGrain / c),
                     [&](int64_t b, int64_t e) { rows_fn(b * c, e - b); });
    return;
  }
  const int64_t hw = l.hw;
  at::parallel_for(0, l.n * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(hw, 1)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t plane = begin; plane < end; ++plane) {
                       plane_fn(plane * hw, plane % c);
                     }
                   });
}

// Runs fn(partial, begin_row, end_row) on every NHWC reduction block in parallel, each with its
// own zeroed `width` doubles of per-channel partial sums, then adds the blocks' partials into
// `sums` in block order (deterministic for any number of threads).
template <typename Fn>
void ReduceBlocksNhwc(const Layout& l, int64_t width, double* sums, const Fn& fn) {
  const int64_t blocks = l.blocks(), block_rows = l.block_rows();
  std::vector<double> partial(blocks * width, 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      fn(partial.data() + b * width, b * block_rows, std::min(l.rows(), (b + 1) * block_rows));
    }
  });
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t j = 0; j < width; ++j) sums[j] += partial[b * width + j];
  }
}

// Per-channel statistics as ATen keeps them (save_mean, save_invstd in x's dtype).
struct ChannelStats {
  torch::Tensor mean;    // [C], x's dtype
  torch::Tensor invstd;  // [C], x's dtype
  // [C], double: the batch mean and biased variance, for the running-statistics update.
  torch::Tensor mean_d;
  torch::Tensor var_d;
};

// One pass over x per channel: mean and biased variance (sums in double, shifted by the
// channel's first value), invstd = 1 / sqrt(var + eps).
ChannelStats BatchStats(const torch::Tensor& x, double eps) {
  const Layout l = LayoutOf(x);
  const int64_t c = l.c;
  const double m = static_cast<double>(l.rows());
  ChannelStats stats{torch::empty({c}, x.options()), torch::empty({c}, x.options()),
                     torch::empty({c}, x.options().dtype(torch::kDouble)),
                     torch::empty({c}, x.options().dtype(torch::kDouble))};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_stats", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    // Per channel: sum (x - shift) and sum (x - shift)^2, shift = the channel's first value.
    std::vector<double> s1(c), s2(c);
    std::vector<scalar_t> shift(c);
    if (l.nhwc) {
      for (int64_t ch = 0; ch < c; ++ch) shift[ch] = xp[ch];
      std::vector<double> sums(2 * c, 0.0);
      ReduceBlocksNhwc(l, 2 * c, sums.data(), [&](double* part, int64_t begin, int64_t end) {
        k.bn_stats_nhwc(xp + begin * c, end - begin, c, shift.data(), part);
      });
      for (int64_t ch = 0; ch < c; ++ch) {
        s1[ch] = sums[ch];
        s2[ch] = sums[c + ch];
      }
    } else {
      at::parallel_for(0, c, 1, [&](int64_t begin, int64_t end) {
        for (int64_t ch = begin; ch < end; ++ch) {
          double lanes[2 * kernels::kSumLanes] = {};
          shift[ch] = xp[ch * l.hw];
          for (int64_t i = 0; i < l.n; ++i) {
            k.bn_stats(xp + (i * c + ch) * l.hw, l.hw, shift[ch], lanes);
          }
          s1[ch] = SumLanes(lanes);
          s2[ch] = SumLanes(lanes + kernels::kSumLanes);
        }
      });
    }
    scalar_t* mean = stats.mean.data_ptr<scalar_t>();
    scalar_t* invstd = stats.invstd.data_ptr<scalar_t>();
    double* mean_d = stats.mean_d.data_ptr<double>();
    double* var_d = stats.var_d.data_ptr<double>();
    for (int64_t ch = 0; ch < c; ++ch) {
      const double d1 = s1[ch] / m;
      const double v = std::max(s2[ch] / m - d1 * d1, 0.0);
      mean_d[ch] = static_cast<double>(shift[ch]) + d1;
      var_d[ch] = v;
      mean[ch] = static_cast<scalar_t>(mean_d[ch]);
      invstd[ch] = static_cast<scalar_t>(1.0 / std::sqrt(v + eps));
    }
  });
  return stats;
}

kernels::ClipParams<double> ClipFor(const FusedActivation& act, double alpha_eff) {
  kernels::ClipParams<double> clip;
  clip.relu = act.kind == FusedActivation::Kind::kRelu;
  if (!clip.relu) {
    clip.alpha = alpha_eff;
    clip.quantize = act.bits > 0;
    if (clip.quantize) {
      const double levels = std::ldexp(1.0, static_cast<int>(act.bits)) - 1.0;
      clip.scale = levels / alpha_eff;
      clip.step = alpha_eff / levels;
    }
  }
  return clip;
}

// y = act(x * scale + shift [+ residual]) with scale = invstd * weight and
// shift = bias - mean * scale (ATen's order); codes when `codes` is defined.
torch::Tensor ApplyForward(const torch::Tensor& x, const torch::Tensor& residual,
                           const torch::Tensor& mean, const torch::Tensor& invstd,
                           const torch::Tensor& weight, const torch::Tensor& bias,
                           const kernels::ClipParams<double>& clip_d, torch::Tensor* codes) {
  const Layout l = LayoutOf(x);
  const int64_t c = l.c;
  torch::Tensor y = torch::empty_like(x);
  if (codes != nullptr) *codes = torch::empty_like(x, x.options().dtype(torch::kByte));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_act_forward", [&] {
    const auto& k = kernels::ActiveKernels().get<scalar_t>();
    kernels::ClipParams<scalar_t> clip;
    clip.relu = clip_d.relu;
    clip.quantize = clip_d.quantize;
    clip.alpha = static_cast<scalar_t>(clip_d.alpha);
    clip.scale = static_cast<scalar_t>(clip_d.scale);
    clip.step = static_cast<scalar_t>(clip_d.step);
    std::vector<scalar_t> scale(c), shift(c);
    const scalar_t* mp = mean.data_ptr<scalar_t>();
    const scalar_t* ip = invstd.data_ptr<scalar_t>();
    const scalar_t* wp = weight.data_ptr<scalar_t>();
    const scalar_t* bp = bias.data_ptr<scalar_t>();
    for (int64_t ch = 0; ch < c; ++ch) {
      scale[ch] = ip[ch] * wp[ch];
      shift[ch] = bp[ch] - mp[ch] * scale[ch];
    }
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* rp = residual.defined() ? residual.data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.data_ptr<scalar_t>();
    uint8_t* cp = codes != nullptr ? codes->data_ptr<uint8_t>() : nullptr;
    ForEachElementwiseChunk(
        l,
        [&](int64_t off, int64_t rows) {
          k.bn_act_forward_nhwc(xp + off, rp == nullptr ? nullptr : rp + off, yp + off,
                                cp == nullptr ? nullptr : cp + off, rows, c, scale.data(),
                                shift.data(), clip);
        },
        [&](int64_t off, int64_t ch) {
          k.bn_act_forward(xp + off, rp == nullptr ? nullptr : rp + off, yp + off,
                           cp == nullptr ? nullptr : cp + off, l.hw, scale[ch], shift[ch], clip);
        });
  });
  return y;
}

struct BnActFunction : public torch::autograd::Function<BnActFunction> {
  // Inputs: x, weight, bias, alpha (PACT; absent for ReLU), residual (optional). `stats`
  // holds the batch mean/invstd already computed (and used for the running update).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const c10::optional<torch::Tensor>& alpha,
                               const c10::optional<torch::Tensor>& residual,
                               const ChannelStats& stats, const kernels::ClipParams<double>& clip) {
    const bool has_residual = residual.has_value() && residual->defined();
    torch::Tensor codes;
    torch::Tensor y = ApplyForward(x, has_residual ? *residual : torch::Tensor(), stats.mean,
                                   stats.invstd, weight, bias, clip, &codes);
    ctx->save_for_backward({x, weight, codes});
    ctx->saved_data["mean"] = stats.mean;
    ctx->saved_data["invstd"] = stats.invstd;
    ctx->saved_data["has_alpha"] = alpha.has_value() && alpha->defined();
    if (alpha.has_value() && alpha->defined()) ctx->saved_data["alpha_like"] = alpha->detach();
    ctx->saved_data["has_residual"] = has_residual;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& codes = saved[2];
    const torch::Tensor mean = ctx->saved_data["mean"].toTensor();
    const torch::Tensor invstd = ctx->saved_data["invstd"].toTensor();
    const bool has_alpha = ctx->saved_data["has_alpha"].toBool();
    const bool has_residual = ctx->saved_data["has_residual"].toBool();
    const bool need_x = ctx->needs_input_grad(0);
    // needs_input_grad counts only the tensor inputs that were passed (an absent alpha has no
    // edge), so the residual's index depends on whether alpha was.
    const bool need_residual = has_residual && ctx->needs_input_grad(has_alpha ? 4 : 3);

    const Layout l = LayoutOf(x);
    const int64_t c = l.c;
    const torch::Tensor g = grads[0].to(x.scalar_type()).contiguous(l.format());
    const double m = static_cast<double>(l.rows());
    torch::Tensor grad_x = need_x ? torch::empty_like(x) : torch::Tensor();
    torch::Tensor grad_residual = need_residual ? torch::empty_like(x) : torch::Tensor();
    torch::Tensor grad_weight = torch::empty({c}, weight.options());
    torch::Tensor grad_bias = torch::empty({c}, weight.options());
    double grad_alpha = 0.0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_act_backward", [&] {
      const auto& k = kernels::ActiveKernels().get<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const uint8_t* cp = codes.data_ptr<uint8_t>();
      const scalar_t* mp = mean.data_ptr<scalar_t>();
      const scalar_t* ip = invstd.data_ptr<scalar_t>();
      const scalar_t* wp = weight.data_ptr<scalar_t>();
      scalar_t* rp = need_residual ? grad_residual.data_ptr<scalar_t>() : nullptr;
      // Per channel: sum g', sum (x - mean) g', sum of g over z >= alpha.
      std::vector<double> sums(3 * c, 0.0);
      if (l.nhwc) {
        ReduceBlocksNhwc(l, 3 * c, sums.data(), [&](double* part, int64_t begin, int64_t end) {
          const int64_t off = begin * c;
          k.bn_act_backward_reduce_nhwc(gp + off, cp + off, xp + off, mp,
                                        rp == nullptr ? nullptr : rp + off, end - begin, c, part);
        });
      } else {
        at::parallel_for(0, c, 1, [&](int64_t begin, int64_t end) {
          for (int64_t ch = begin; ch < end; ++ch) {
            double lanes[3 * kernels::kSumLanes] = {};
            for (int64_t i = 0; i < l.n; ++i) {
              const int64_t off = (i * c + ch) * l.hw;
              k.bn_act_backward_reduce(gp + off, cp + off, xp + off, mp[ch],
                                       rp == nullptr ? nullptr : rp + off, l.hw, lanes);
            }
            sums[ch] = SumLanes(lanes);
            sums[c + ch] = SumLanes(lanes + kernels::kSumLanes);
            sums[2 * c + ch] = SumLanes(lanes + 2 * kernels::kSumLanes);
          }
        });
      }
      scalar_t* gw = grad_weight.data_ptr<scalar_t>();
      scalar_t* gb = grad_bias.data_ptr<scalar_t>();
      std::vector<scalar_t> kk(c), grad_mean(c);
      for (int64_t ch = 0; ch < c; ++ch) {
        const double sum_g = sums[ch], dotp = sums[c + ch];
        gw[ch] = static_cast<scalar_t>(dotp * ip[ch]);
        gb[ch] = static_cast<scalar_t>(sum_g);
        kk[ch] = static_cast<scalar_t>(static_cast<scalar_t>(dotp) * ip[ch] * ip[ch] / m);
        grad_mean[ch] = static_cast<scalar_t>(sum_g / m);
        grad_alpha += sums[2 * c + ch];
      }
      if (!need_x) return;
      scalar_t* gxp = grad_x.data_ptr<scalar_t>();
      ForEachElementwiseChunk(
          l,
          [&](int64_t off, int64_t rows) {
            k.bn_backward_apply_nhwc(gp + off, cp + off, xp + off, gxp + off, rows, c, mp,
                                     grad_mean.data(), kk.data(), ip, wp);
          },
          [&](int64_t off, int64_t ch) {
            k.bn_backward_apply(gp + off, cp + off, xp + off, gxp + off, l.hw, mp[ch],
                                grad_mean[ch], kk[ch], ip[ch], wp[ch]);
          });
    });
    torch::Tensor alpha_grad;
    if (has_alpha) {
      const torch::Tensor like = ctx->saved_data["alpha_like"].toTensor();
      alpha_grad = torch::full(like.sizes(), grad_alpha, like.options());
    }
    return {grad_x,        grad_weight,     grad_bias,      alpha_grad,
            grad_residual, torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor ComposedActivation(const torch::Tensor& z, const FusedActivation& act) {
  if (act.kind == FusedActivation::Kind::kRelu) return torch::relu(z);
  return Pact(z, act.alpha, act.bits, act.alpha_min);
}

// BatchNormImplBase::forward's running-average factor, with its num_batches_tracked update.
double RunningAverageFactor(torch::nn::BatchNorm2dImpl& bn) {
  const auto& momentum = bn.options.momentum();
  double factor = momentum.has_value() ? *momentum : 0.0;
  if (bn.num_batches_tracked.defined()) {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);
    if (!momentum.has_value()) factor = 1.0 / bn.num_batches_tracked.item<double>();
  }
  return factor;
}

}  // namespace

void SetBatchNormActivationFusion(bool enabled) { g_fusion_enabled.store(enabled); }
bool BatchNormActivationFusion() { return g_fusion_enabled.load(); }

bool BatchNormActivationIsFused(const torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                const torch::Tensor& residual) {
  if (!BatchNormActivationFusion() || !UsesFusedKernels(x) || x.dim() != 4 || x.numel() == 0 ||
      !bn.options.affine() ||
      !(x.is_contiguous() || x.is_contiguous(torch::MemoryFormat::ChannelsLast))) {
    return false;
  }
  if (x.size(1) != bn.options.num_features() || x.size(0) * x.size(2) * x.size(3) < 2) {
    return false;  // the composed module raises the right error
  }
  for (const torch::Tensor* t : {&bn.weight, &bn.bias}) {
    if (t->scalar_type() != x.scalar_type() || !t->device().is_cpu() || !t->is_contiguous()) {
      return false;
    }
  }
  const bool batch_stats = bn.is_training() || !bn.options.track_running_stats();
  if (!batch_stats) {
    for (const torch::Tensor* t : {&bn.running_mean, &bn.running_var}) {
      if (!t->defined() || t->scalar_type() != x.scalar_type() || !t->is_contiguous()) {
        return false;
      }
    }
  }
  if (residual.defined() &&
      (residual.sizes() != x.sizes() || residual.scalar_type() != x.scalar_type() ||
       !residual.device().is_cpu() || residual.layout() != torch::kStrided)) {
    return false;
  }
  return true;
}

torch::Tensor BatchNormActivation(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                  const torch::Tensor& residual, const FusedActivation& act) {
  const bool pact = act.kind == FusedActivation::Kind::kPact;
  const bool grad =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() || bn.weight.requires_grad() || bn.bias.requires_grad() ||
       (pact && act.alpha.requires_grad()) || (residual.defined() && residual.requires_grad()));
  const bool batch_stats = bn.is_training() || !bn.options.track_running_stats();
  if (!BatchNormActivationIsFused(bn, x, residual) || (grad && !batch_stats)) {
    torch::Tensor z = bn.forward(x);
    if (residual.defined()) z = z + residual;
    return ComposedActivation(z, act);
  }
  const double alpha_eff =
      pact ? PactForwardAlpha(act.alpha, act.bits, act.alpha_min, x.scalar_type()) : 0.0;
  const kernels::ClipParams<double> clip = ClipFor(act, alpha_eff);
  const torch::Tensor r =
      residual.defined() ? residual.contiguous(LayoutOf(x).format()) : torch::Tensor();

  ChannelStats stats;
  if (batch_stats) {
    const double factor =
        bn.is_training() && bn.options.track_running_stats() ? RunningAverageFactor(bn) : 0.0;
    {
      torch::NoGradGuard no_grad;
      stats = BatchStats(x.detach(), bn.options.eps());
      if (bn.is_training() && bn.running_mean.defined() && bn.running_var.defined()) {
        const double m = static_cast<double>(x.size(0) * x.size(2) * x.size(3));
        const torch::Tensor unbiased = stats.var_d * (m / (m - 1.0));
        const torch::Tensor rm = bn.running_mean.to(torch::kDouble);
        const torch::Tensor rv = bn.running_var.to(torch::kDouble);
        bn.running_mean.copy_(stats.mean_d * factor + rm * (1.0 - factor));
        bn.running_var.copy_(unbiased * factor + rv * (1.0 - factor));
      }
    }
    if (grad) {
      return BnActFunction::apply(
          x, bn.weight, bn.bias, pact ? c10::optional<torch::Tensor>(act.alpha) : c10::nullopt,
          r.defined() ? c10::optional<torch::Tensor>(r) : c10::nullopt, stats, clip);
    }
  } else {
    torch::NoGradGuard no_grad;
    stats.mean = bn.running_mean;
    stats.invstd =
        (bn.running_var.to(torch::kDouble) + bn.options.eps()).rsqrt().to(x.scalar_type());
  }
  torch::NoGradGuard no_grad;
  return ApplyForward(x.detach(), r.defined() ? r.detach() : r, stats.mean, stats.invstd,
                      bn.weight.detach(), bn.bias.detach(), clip, nullptr);
}

}  // namespace pact::quant
