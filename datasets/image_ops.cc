#include "datasets/image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "glog/logging.h"

namespace pact::datasets {
namespace {

inline uint8_t RoundToByte(float v) {
  if (!(v > 0.0f)) return 0;  // also NaN, which cannot occur but must not be UB
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(v + 0.5f);
}

// Horizontal pass of one source row: out[ox * C + c] = sum_t w * row[(first + t) * C + c].
template <int kChannels>
void HorizontalRow(const uint8_t* row, const ResizeAxis& x, float* out) {
  for (int ox = 0; ox < x.dst_size; ++ox) {
    const uint8_t* p = row + static_cast<int64_t>(x.first[ox]) * kChannels;
    const float* w = &x.weights[static_cast<size_t>(ox) * x.taps];
    float acc[kChannels] = {};
    for (int t = 0; t < x.count[ox]; ++t) {
      for (int c = 0; c < kChannels; ++c) acc[c] += w[t] * p[t * kChannels + c];
    }
    for (int c = 0; c < kChannels; ++c) out[ox * kChannels + c] = acc[c];
  }
}

void HorizontalRowAny(const uint8_t* row, int channels, const ResizeAxis& x, float* out) {
  for (int ox = 0; ox < x.dst_size; ++ox) {
    const uint8_t* p = row + static_cast<int64_t>(x.first[ox]) * channels;
    const float* w = &x.weights[static_cast<size_t>(ox) * x.taps];
    for (int c = 0; c < channels; ++c) {
      float acc = 0.0f;
      for (int t = 0; t < x.count[ox]; ++t) acc += w[t] * p[t * channels + c];
      out[ox * channels + c] = acc;
    }
  }
}

}  // namespace

ResizeAxis ComputeResizeAxis(int src_size, double box_start, double box_size, int dst_size) {
  CHECK_GE(src_size, 1);
  CHECK_GT(box_size, 0.0);
  CHECK_GE(dst_size, 1);
  const double scale = box_size / dst_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's radius is 1 source pixel, widened
  ResizeAxis axis;
  axis.dst_size = dst_size;
  axis.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  axis.first.resize(dst_size);
  axis.count.resize(dst_size);
  axis.weights.assign(static_cast<size_t>(dst_size) * axis.taps, 0.0f);
  std::vector<double> w(axis.taps);
  for (int i = 0; i < dst_size; ++i) {
    const double center = box_start + (i + 0.5) * scale;
    // PIL's bounds: taps whose centers lie within `support` of `center`, clipped to the image.
    const int lo = std::max(0, static_cast<int>(std::floor(center - support + 0.5)));
    const int hi = std::min(src_size, static_cast<int>(std::floor(center + support + 0.5)));
    double total = 0.0;
    int n = std::max(0, std::min(hi - lo, axis.taps));
    for (int t = 0; t < n; ++t) {
      const double d = std::abs((lo + t - center + 0.5) / filter_scale);
      w[t] = d < 1.0 ? 1.0 - d : 0.0;
      total += w[t];
    }
    int first = lo;
    if (!(total > 0.0)) {
      // Only for a box (almost) outside the image: take the nearest source pixel.
      first = std::clamp(static_cast<int>(std::floor(center)), 0, src_size - 1);
      n = 1;
      w[0] = total = 1.0;
    }
    axis.first[i] = first;
    axis.count[i] = n;
    for (int t = 0; t < n; ++t) {
      axis.weights[static_cast<size_t>(i) * axis.taps + t] = static_cast<float>(w[t] / total);
    }
  }
  return axis;
}

void ResizeInterleaved(const uint8_t* src, int src_height, int src_width, int channels,
                       int64_t src_stride, const ResizeAxis& y, const ResizeAxis& x, uint8_t* dst,
                       std::vector<float>* scratch) {
  DCHECK_GE(channels, 1);
  // The source rows the vertical taps read.
  int row_begin = src_height, row_end = 0;
  for (int i = 0; i < y.dst_size; ++i) {
    row_begin = std::min(row_begin, y.first[i]);
    row_end = std::max(row_end, y.first[i] + y.count[i]);
  }
  DCHECK_LE(row_end, src_height);
  for (int i = 0; i < x.dst_size; ++i) DCHECK_LE(x.first[i] + x.count[i], src_width);
  const int64_t out_row = static_cast<int64_t>(x.dst_size) * channels;
  scratch->resize(static_cast<size_t>(std::max(0, row_end - row_begin)) * out_row +
                  static_cast<size_t>(out_row));
  float* rows = scratch->data();
  float* acc = rows + static_cast<int64_t>(row_end - row_begin) * out_row;
  for (int r = row_begin; r < row_end; ++r) {
    const uint8_t* row = src + r * src_stride;
    float* out = rows + static_cast<int64_t>(r - row_begin) * out_row;
    switch (channels) {
      case 1:
        HorizontalRow<1>(row, x, out);
        break;
      case 3:
        HorizontalRow<3>(row, x, out);
        break;
      default:
        HorizontalRowAny(row, channels, x, out);
    }
  }
  for (int oy = 0; oy < y.dst_size; ++oy) {
    const float* w = &y.weights[static_cast<size_t>(oy) * y.taps];
    const float* base = rows + static_cast<int64_t>(y.first[oy] - row_begin) * out_row;
    std::fill(acc, acc + out_row, 0.0f);
    for (int t = 0; t < y.count[oy]; ++t) {
      const float wt = w[t];
      const float* in = base + t * out_row;
      for (int64_t j = 0; j < out_row; ++j) acc[j] += wt * in[j];
    }
    uint8_t* out = dst + oy * out_row;
    for (int64_t j = 0; j < out_row; ++j) out[j] = RoundToByte(acc[j]);
  }
}

double UniformUnit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

int64_t UniformIndex(std::mt19937_64& rng, int64_t n) {
  DCHECK_GE(n, 1);
  return static_cast<int64_t>((static_cast<unsigned __int128>(rng()) * static_cast<uint64_t>(n)) >>
                              64);
}

CropBox SampleRandomResizedCrop(int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, std::mt19937_64& rng) {
  DCHECK(height >= 1 && width >= 1);
  const double area = static_cast<double>(height) * width;
  const double log_min = std::log(ratio_min);
  const double log_max = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (scale_min + (scale_max - scale_min) * UniformUnit(rng));
    const double aspect = std::exp(log_min + (log_max - log_min) * UniformUnit(rng));
    // Python's round() rounds half to even, like nearbyint in the default rounding mode.
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      CropBox box;
      box.height = h;
      box.width = w;
      box.top = static_cast<int>(UniformIndex(rng, height - h + 1));
      box.left = static_cast<int>(UniformIndex(rng, width - w + 1));
      return box;
    }
  }
  // Fallback: the central crop, as wide or tall as the ratio range allows.
  const double in_ratio = static_cast<double>(width) / height;
  CropBox box;
  box.width = width;
  box.height = height;
  if (in_ratio < ratio_min) {
    box.height = std::clamp(static_cast<int>(std::nearbyint(width / ratio_min)), 1, height);
  } else if (in_ratio > ratio_max) {
    box.width = std::clamp(static_cast<int>(std::nearbyint(height * ratio_max)), 1, width);
  }
  box.top = (height - box.height) / 2;
  box.left = (width - box.width) / 2;
  return box;
}

SourceBox ResizeCenterCropBox(int height, int width, int resize_size, int crop_size) {
  DCHECK_LE(crop_size, resize_size);
  const int short_side = std::min(height, width);
  const int long_side = std::max(height, width);
  // int(size * long / short): Python float division, then truncation.
  const int new_long = static_cast<int>(static_cast<double>(resize_size) * long_side / short_side);
  const int resized_h = height <= width ? resize_size : new_long;
  const int resized_w = height <= width ? new_long : resize_size;
  const double top = std::nearbyint((resized_h - crop_size) / 2.0);
  const double left = std::nearbyint((resized_w - crop_size) / 2.0);
  const double sy = static_cast<double>(height) / resized_h;
  const double sx = static_cast<double>(width) / resized_w;
  return SourceBox{top * sy, left * sx, crop_size * sy, crop_size * sx};
}

ScalingFactor ChooseScalingFactor(const std::vector<ScalingFactor>& factors, double box_height,
                                  double box_width, int dst_height, int dst_width) {
  ScalingFactor best{1, 1};
  double best_value = 1.0;
  for (const ScalingFactor& f : factors) {
    const double value = static_cast<double>(f.num) / f.denom;
    if (value >= best_value) continue;
    // A hair of tolerance: a box exactly 2x the target must qualify for 1/2.
    if (box_height * value + 1e-9 >= dst_height && box_width * value + 1e-9 >= dst_width) {
      best = f;
      best_value = value;
    }
  }
  return best;
}

int ScaledSize(int size, ScalingFactor factor) {
  return static_cast<int>((static_cast<int64_t>(size) * factor.num + factor.denom - 1) /
                          factor.denom);
}

void CmykToRgb(const uint8_t* cmyk, int64_t pixels, uint8_t* rgb) {
  for (int64_t i = 0; i < pixels; ++i) {
    const int k = cmyk[4 * i + 3];
    for (int c = 0; c < 3; ++c) {
      rgb[3 * i + c] = static_cast<uint8_t>((cmyk[4 * i + c] * k + 127) / 255);
    }
  }
}

}  // namespace pact::datasets
