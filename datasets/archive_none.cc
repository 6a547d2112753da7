// ExtractArchive for builds without libarchive (the CMake build without it, or with
// -DPACT_DISABLE=archive): extraction fails, saying what to extract by hand.
#include "absl/strings/str_cat.h"
#include "datasets/archive.h"

namespace pact::datasets {

absl::StatusOr<ExtractStats> ExtractArchive(const std::string& archive,
                                            const std::string& destination,
                                            const ArchiveEntryMapper&) {
  return absl::UnimplementedError(
      absl::StrCat("this build cannot extract archives (built without libarchive): extract ",
                   archive, " into ", destination, " by hand (tar -xf / unzip)"));
}

}  // namespace pact::datasets
