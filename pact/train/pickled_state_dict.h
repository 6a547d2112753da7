// Reading state dicts pickled in PyTorch's zip format: our `*_state_dict.pt` files
// (torch::pickle_save of a dict of tensors) and Python's torch.save(model.state_dict()).
//
// LibTorch 1.13's unpickler reads a pickled `collections.OrderedDict` as None (it only expects
// one as a tensor's unused backward hooks), and a state_dict() is an OrderedDict with a
// `_metadata` attribute. So before unpickling, PatchOrderedDicts rewrites each
// `OrderedDict()` call in the pickle into an empty dict, and drops the state a final BUILD
// would set on the top-level dict (the `_metadata`); the tensors are untouched. (Pickles hold
// no offsets below protocol 4, so opcodes can be replaced by shorter ones.)
#ifndef PACT_TRAIN_PICKLED_STATE_DICT_H_
#define PACT_TRAIN_PICKLED_STATE_DICT_H_

#include <torch/types.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace pact::train {

// The tensors of the dict pickled in `path`, by key. DataLoss when it is not a zip-format
// pickle of a dict with string keys; non-tensor values are skipped.
absl::StatusOr<std::map<std::string, torch::Tensor>> ReadPickledStateDict(const std::string& path);

// `pickle` (protocol 2, as torch.save and pickle_save write) with every
// `collections.OrderedDict()` call made an EMPTY_DICT, and a BUILD applied to the top-level
// object, with its state argument, dropped. The opcodes are walked, never searched for, so
// bytes inside strings are left alone; a pickle using an opcode the walker does not know, or
// without an OrderedDict, is returned unchanged.
std::string PatchOrderedDicts(std::string pickle);

}  // namespace pact::train

#endif  // PACT_TRAIN_PICKLED_STATE_DICT_H_
