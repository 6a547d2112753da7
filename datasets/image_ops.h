// Geometry and resampling for the decoded-image datasets (imagenet, svhn): separable bilinear
// resizing of a source box, torchvision's RandomResizedCrop and Resize + CenterCrop boxes, the
// JPEG DCT scale choice, and CMYK -> RGB.
//
// Every function here is pure (randomness comes from the generator passed in, through raw
// std::mt19937_64 output), so the geometry is testable exactly and a batch is reproducible
// from (seed, epoch, index) alone.
#ifndef PACT_DATASETS_IMAGE_OPS_H_
#define PACT_DATASETS_IMAGE_OPS_H_

#include <cstdint>
#include <random>
#include <vector>

namespace pact::datasets {

// ---- Resizing ------------------------------------------------------------------------------

// The taps of one axis of a resize: output i reads source pixels [first[i], first[i] + count[i])
// with weights[i * taps ...], which sum to 1.
//
// The filter is PIL's BILINEAR (what torchvision's Resize / RandomResizedCrop use on PIL
// images): a triangle of radius 1 in source pixels when upscaling (= plain bilinear with
// half-pixel centers, as cv2.INTER_LINEAR and F.interpolate(align_corners=False)), widened to
// the scale factor when downscaling, so a reduction averages every source pixel (antialiasing)
// instead of skipping some. Taps outside the image are dropped and the rest renormalized
// (PIL's border rule; for upscaling this equals edge replication).
struct ResizeAxis {
  int dst_size = 0;
  int taps = 0;  // stride of `weights`
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;
};

// Taps that map the source interval [box_start, box_start + box_size) (in pixels of a source
// axis of `src_size` pixels; fractional boxes allowed) onto `dst_size` output pixels.
// Requires src_size >= 1, box_size > 0, dst_size >= 1.
ResizeAxis ComputeResizeAxis(int src_size, double box_start, double box_size, int dst_size);

// Resizes an interleaved uint8 image (HWC, `channels` per pixel, rows `src_stride` bytes apart)
// with the given axes into `dst` (y.dst_size x x.dst_size x channels, HWC), rounding to
// nearest. Horizontal pass first, in float, only over the source rows the vertical taps read.
// `scratch` is reused between calls to avoid allocation.
void ResizeInterleaved(const uint8_t* src, int src_height, int src_width, int channels,
                       int64_t src_stride, const ResizeAxis& y, const ResizeAxis& x, uint8_t* dst,
                       std::vector<float>* scratch);

// ---- Crop boxes ----------------------------------------------------------------------------

// An integer box of the source image: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int top = 0;
  int left = 0;
  int height = 0;
  int width = 0;
  bool operator==(const CropBox& o) const {
    return top == o.top && left == o.left && height == o.height && width == o.width;
  }
};

// A uniform double in [0, 1) from the top 53 bits of one generator output.
double UniformUnit(std::mt19937_64& rng);
// A uniform integer in [0, n) (n >= 1) by multiply-shift (Lemire), one generator output.
int64_t UniformIndex(std::mt19937_64& rng, int64_t n);

// torchvision.transforms.RandomResizedCrop.get_params (0.14) for an image `height` x `width`:
// up to 10 attempts of area fraction ~ U(scale_min, scale_max) and log aspect ratio (w/h) ~
// U(log ratio_min, log ratio_max), rounded to whole pixels; the first box that fits is placed
// uniformly. If none fits, the central crop of the whole image clamped to the ratio range.
CropBox SampleRandomResizedCrop(int height, int width, double scale_min, double scale_max,
                                double ratio_min, double ratio_max, std::mt19937_64& rng);

// A source box in (fractional) source pixels.
struct SourceBox {
  double top = 0;
  double left = 0;
  double height = 0;
  double width = 0;
};

// torchvision's evaluation transform Resize(resize_size) + CenterCrop(crop_size) on an image
// `height` x `width`, as the source box that the crop covers: the shorter side scales to
// resize_size, the longer to int(resize_size * long / short); the crop's offset in the resized
// image is round((resized - crop) / 2) (round half to even, as Python's round). Resizing this
// box straight to crop_size x crop_size gives the same pixels as resizing, then cropping.
// Requires crop_size <= resize_size.
SourceBox ResizeCenterCropBox(int height, int width, int resize_size, int crop_size);

// ---- JPEG DCT scaling ----------------------------------------------------------------------

// A libjpeg scaling factor num/denom (TurboJPEG offers 1/8 .. 2 in steps of 1/8).
struct ScalingFactor {
  int num = 1;
  int denom = 1;
};

// The smallest factor <= 1 in `factors` that keeps a source box of box_height x box_width at
// least dst_height x dst_width once scaled (decoding at a reduced DCT scale is far cheaper than
// decoding at full size and resizing). 1/1 when nothing smaller qualifies.
ScalingFactor ChooseScalingFactor(const std::vector<ScalingFactor>& factors, double box_height,
                                  double box_width, int dst_height, int dst_width);

// ceil(size * num / denom), TurboJPEG's TJSCALED: the decoded size of one axis.
int ScaledSize(int size, ScalingFactor factor);

// ---- Color ---------------------------------------------------------------------------------

// CMYK as decoded from an Adobe (Photoshop) JPEG, where the stored values are inverted ink
// (255 = no ink), to RGB: r = c * k / 255 and likewise g from m, b from y. This is what PIL
// does for such files (the only CMYK JPEGs in ImageNet) with its naive CMYK -> RGB.
void CmykToRgb(const uint8_t* cmyk, int64_t pixels, uint8_t* rgb);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_IMAGE_OPS_H_
