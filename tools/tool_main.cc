#include "tools/tool_main.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "pact/train/components.h"
#include "pact/train/trainer.h"
#include "tools/cli.h"

namespace pact::tools {

int RunTool(const char* name, const char* usage, int argc, char** argv,
            const std::function<absl::Status()>& body) {
  std::vector<std::string> args = NormalizeFlagNames({argv, argv + argc});
  std::vector<char*> normalized;
  for (auto& arg : args) normalized.push_back(arg.data());
  int normalized_argc = static_cast<int>(normalized.size());
  char** normalized_argv = normalized.data();
  gflags::SetUsageMessage(usage);
  gflags::ParseCommandLineFlags(&normalized_argc, &normalized_argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  absl::Status status;
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY"); cwd != nullptr && chdir(cwd) != 0) {
    status = absl::InternalError(absl::StrCat("cannot chdir to ", cwd));
  } else {
    train::TuneProcessForTraining();
    at::set_num_threads(train::ResolveThreads(0));
    status = body();
  }
  if (status.ok()) return 0;
  std::cerr << name << ": error: " << status.message() << std::endl;
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace pact::tools
