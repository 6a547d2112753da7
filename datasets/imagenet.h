// ImageNet ILSVRC-2012 classification from JPEG folders (the layout torchvision's ImageFolder
// reads):
//   <data_root>/train/<wnid>/*.JPEG     <data_root>/val/<wnid>/*.JPEG     (default data/imagenet)
// Class index = the wnid's position among the sorted folder names of train/ (as ImageFolder).
// A val class folder that train/ lacks is InvalidArgument; an empty train class folder is
// NotFound (an incomplete extraction); an empty or missing val class folder is a warning (a
// val subset is legitimate). Files other than .JPEG/.jpg/.jpeg are ignored. If train/ is
// missing, the test split takes its class index from val/'s folders, with a warning.
//
// Only the file list is in memory (about 50 bytes per image). Get reads and decodes one JPEG
// (TurboJPEG, at the smallest DCT scale that keeps the crop at least image_size pixels),
// then:
//   training (`augment`): RandomResizedCrop(image_size, scale (0.08, 1), ratio (3/4, 4/3)) +
//     RandomHorizontalFlip, torchvision's semantics (10 attempts, then a central crop);
//   otherwise: Resize(resize_size) + CenterCrop(image_size), as one resize of the source box
//     the crop covers;
// with PIL's bilinear filter (antialiased when reducing), then normalization (default ImageNet
// mean/std). Grayscale and CMYK JPEGs become RGB.
//
// Unusable images (unreadable file, corrupt or non-JPEG data, e.g. the PNG in ImageNet's train
// set named n02105855_2933.JPEG) never stop training: Get writes a zero image (after
// normalization, i.e. the mean color: no signal for the network and no shift of BatchNorm
// statistics) with the file's label, counts it, and logs a warning (the first 10, then at
// every power of two).
#ifndef PACT_DATASETS_IMAGENET_H_
#define PACT_DATASETS_IMAGENET_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "datasets/imagenet_options.pb.h"
#include "datasets/transforms.h"

namespace pact::datasets {

inline constexpr char kImagenetDefaultRoot[] = "data/imagenet";
inline constexpr char kImagenetHubRepo[] = "ILSVRC/imagenet-1k";

// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225): the torchvision models' statistics.
ChannelNormalization ImagenetNormalization();

// What Get does to one image.
struct ImagenetTransform {
  int image_size = 224;
  int resize_size = 256;  // evaluation only
  bool train = false;     // random-resized-crop + flip; else resize + center crop
  double min_scale = 0.08;
  double max_scale = 1.0;
  double min_ratio = 3.0 / 4.0;
  double max_ratio = 4.0 / 3.0;
};

// Reused between calls of TransformJpeg (one per thread) so Get allocates nothing in steady
// state.
struct ImageBuffers {
  std::vector<uint8_t> decoded;  // the decoded (DCT-scaled) RGB image
  std::vector<uint8_t> cmyk;
  std::vector<float> scratch;
  std::vector<uint8_t> output;  // image_size x image_size x 3, HWC RGB
};

// Decodes `jpeg` and applies `transform`, drawing the crop and then the flip from `rng` when
// training. Leaves the HWC result, before the flip, in buffers->output and sets `flip`.
// DataLoss for data that is not a decodable JPEG.
absl::Status TransformJpeg(absl::string_view jpeg, const ImagenetTransform& transform,
                           std::mt19937_64& rng, ImageBuffers* buffers, bool* flip);

class ImagenetDataset final : public Dataset {
 public:
  struct Config {
    std::string name;    // "imagenet train"
    std::string folder;  // <data_root>/train or /val
    ImagenetTransform transform;
    ChannelNormalization normalization;
  };
  // `paths` holds each image's path relative to config.folder, `labels` its class index.
  ImagenetDataset(Config config, std::vector<std::string> classes, std::vector<std::string> paths,
                  std::vector<uint16_t> labels);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<int64_t> image_shape() const override {
    return {3, config_.transform.image_size, config_.transform.image_size};
  }
  int64_t Get(int64_t index, std::mt19937_64& rng, float* image) const override;
  std::string Describe() const override;

  std::string path(int64_t index) const;
  int64_t label(int64_t index) const { return labels_[index]; }
  const std::vector<std::string>& classes() const { return classes_; }
  // Images that could not be used so far (substituted by zero images).
  int64_t unusable_images() const { return unusable_.load(std::memory_order_relaxed); }

 private:
  void ReportUnusable(int64_t index, const absl::Status& status) const;

  const Config config_;
  const std::vector<std::string> classes_;  // wnids, sorted
  std::string names_;                       // relative paths, concatenated
  std::vector<uint64_t> offsets_;           // size() + 1 offsets into names_
  const std::vector<uint16_t> labels_;
  const std::vector<float> lut_;
  mutable std::atomic<int64_t> unusable_{0};
};

// Lists the split of `context` under context.data_root (or kImagenetDefaultRoot); no
// download. NotFound for a missing split folder (with instructions) or an empty train class;
// InvalidArgument for bad options or a val class not in train/.
absl::StatusOr<std::shared_ptr<const ImagenetDataset>> LoadImagenet(const DatasetContext& context,
                                                                    const ImagenetOptions& options);

// If <root>/train (SPLIT_TRAIN) or <root>/val (SPLIT_TEST) is missing, or an earlier run of
// this left it incomplete: downloads the split's archives of ILSVRC/imagenet-1k from the Hub
// (HfEndpoint(), FindHfToken()) into <root>/hf_cache, resuming, and extracts each into
// <split>/<wnid>/ with the original file names (the Hub's "n01440764_10026_n01440764.JPEG"
// becomes train/n01440764/n01440764_10026.JPEG). Completed archives are remembered (and
// deleted unless keep_archives), so an interrupted run resumes where it stopped.
// PermissionDenied on 401/403 saying how to log in and accept the terms.
absl::Status DownloadImagenetFromHub(const std::string& root, Split split,
                                     const ImagenetOptions& options);

// The archives of a split on the Hub ("data/train_images_0.tar.gz", ...).
std::vector<std::string> ImagenetHubFiles(Split split);

}  // namespace pact::datasets

#endif  // PACT_DATASETS_IMAGENET_H_
