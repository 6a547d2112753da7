// The shared start and end of the deployment tools (//tools:export, //tools:infer).
#ifndef PACT_TOOLS_TOOL_MAIN_H_
#define PACT_TOOLS_TOOL_MAIN_H_

#include <functional>

#include "absl/status/status.h"

namespace pact::tools {

// Parses the flags (dashes or underscores, as the trainer), logs to stderr, enters the caller's
// folder under `bazel run`, applies the trainer's malloc settings and uses every core (LibTorch
// defaults to one thread on this VM), then runs `body`. Prints "<name>: error: <message>" on
// failure; returns the exit code (2 for InvalidArgument, 1 for other errors, 0 for success).
int RunTool(const char* name, const char* usage, int argc, char** argv,
            const std::function<absl::Status()>& body);

}  // namespace pact::tools

#endif  // PACT_TOOLS_TOOL_MAIN_H_
