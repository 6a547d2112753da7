// SVHN (Netzer et al. 2011), cropped digits ("format 2"): 32x32 RGB house-number digits,
// 10 classes; 73257 train, 26032 test and 531131 extra images.
//
// Files under data_root (default "data/svhn"): train_32x32.mat, test_32x32.mat and
// extra_32x32.mat from http://ufldl.stanford.edu/housenumbers/, MATLAB v5 files read with
// libmatio holding X (32x32x3xN uint8, MATLAB's column-major order: row, column, channel,
// image) and y (Nx1, 1..10, where 10 means the digit 0). The train split is train followed by
// extra, as DoReFa-Net's SVHN experiments (tensorpack's RandomMixData of both), unless
// use_extra is false. Missing files are downloaded (resumable, MD5-checked) unless
// `download` is false.
//
// Memory: the split is held as 32x32 uint8 CHW (train + extra: 1.86 GB) in the buffers libmatio
// reads X into, transposed in place: no second copy. The resize to 40x40 that
// DoReFa's SVHN net takes happens in Get, with precomputed bilinear taps (cheap next to a
// training step: README.md, Benchmarks), which keeps memory at 32x32 instead of 1.56x more at
// 40x40.
//
// Normalization default: mean 0, std 256/255 per channel, so the network sees x/256 exactly
// as in tensorpack's svhn-digit-dorefa.py (`image / 256.0`).
// Augmentation (`augment`, off by default): that script's training augmentors after the
// resize, Brightness(30) then Contrast((0.5, 1.5)): x + U(-30, 30), then (x - m) * U(0.5, 1.5)
// + m with m each channel's mean, each clipped to [0, 255] and truncated to uint8. (No crops
// or flips: digits are not flip-invariant.)
#ifndef PACT_DATASETS_SVHN_H_
#define PACT_DATASETS_SVHN_H_

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "datasets/image_ops.h"
#include "datasets/svhn_options.pb.h"
#include "datasets/transforms.h"

namespace pact::datasets {

inline constexpr char kSvhnDefaultRoot[] = "data/svhn";
inline constexpr char kSvhnBaseUrl[] = "http://ufldl.stanford.edu/housenumbers";
inline constexpr int kSvhnSide = 32;

// mean 0, std 256/255: (x/255 - 0) / (256/255) = x/256.
ChannelNormalization SvhnNormalization();

// The files of a split, in order: {"test_32x32.mat"}, {"train_32x32.mat"} or
// {"train_32x32.mat", "extra_32x32.mat"}.
std::vector<std::string> SvhnFileNames(Split split, bool use_extra);

// The official MD5 of an SVHN file name ("" for another name).
std::string SvhnMd5(absl::string_view file_name);

// One .mat file's images: count x 3 x 32 x 32 uint8, CHW, and labels 0..9.
struct SvhnImages {
  int64_t count = 0;
  std::shared_ptr<const uint8_t> pixels;  // owns matio's buffer
  std::vector<uint8_t> labels;
};

// Reads X and y of an SVHN .mat file. DataLoss naming the file and the variable, with expected
// vs actual, for an unreadable file, a missing X or y, a wrong class/shape, disagreeing counts,
// or a label outside 1..10.
absl::StatusOr<SvhnImages> ReadSvhnMat(const std::string& path);

class SvhnDataset final : public Dataset {
 public:
  struct Config {
    std::string name;      // "svhn train"
    std::string source;    // for Describe
    int size = kSvhnSide;  // output side length (32 = no resize)
    ChannelNormalization normalization;
    bool augment = false;
  };
  SvhnDataset(Config config, std::vector<SvhnImages> parts);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> image_shape() const override { return {3, config_.size, config_.size}; }
  int64_t Get(int64_t index, std::mt19937_64& rng, float* image) const override;
  std::string Describe() const override;

  // The stored 3x32x32 CHW image and label (tests).
  const uint8_t* raw_image(int64_t index) const;
  int64_t label(int64_t index) const { return labels_[index]; }

 private:
  const Config config_;
  std::vector<SvhnImages> parts_;
  std::vector<int64_t> part_begin_;  // first dataset index of each part
  std::vector<uint8_t> labels_;      // all parts' labels, concatenated
  const std::vector<float> lut_;
  const ResizeAxis axis_;  // 32 -> size, the same for rows and columns
};

// Loads the split of `context` from context.data_root (or kSvhnDefaultRoot) without
// downloading. NotFound (saying where to get them) for missing files, DataLoss from
// ReadSvhnMat, InvalidArgument for a bad split, resize or normalization.
absl::StatusOr<std::shared_ptr<const SvhnDataset>> LoadSvhn(const DatasetContext& context,
                                                            const SvhnOptions& options);

// Downloads the files of `names` missing from `root` from options.download_url (else env
// PACT_SVHN_URL, else kSvhnBaseUrl) + "/" + name, checking each against `md5s` (file name ->
// MD5; the official ones when empty). See http_download.h for the error codes.
absl::Status DownloadMissingSvhnFiles(const std::string& root,
                                      const std::vector<std::string>& names,
                                      const SvhnOptions& options,
                                      const std::map<std::string, std::string>& md5s = {});

}  // namespace pact::datasets

#endif  // PACT_DATASETS_SVHN_H_
