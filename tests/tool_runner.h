// Running the project's binaries as a user does, for the CLI tests (train_cli_test,
// deploy_cli_test): in a child process, in a given folder, capturing stdout and stderr.
#ifndef PACT_TESTS_TOOL_RUNNER_H_
#define PACT_TESTS_TOOL_RUNNER_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pact::testing {

inline std::string Runfiles(const std::string& path) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/pact_qat/" + path;
}

struct ToolResult {
  int exit_code = -1;
  std::string output;     // stdout and stderr together
  std::string last_line;  // the last non-empty line
};

// Runs runfile `binary` ("tools/train") with `args` in `cwd`. When `signal_on` is not empty,
// sends `signal_number` once that text appears in the output.
inline ToolResult RunTool(const std::string& binary, const std::vector<std::string>& args,
                          const std::string& cwd, const std::string& signal_on = "",
                          int signal_number = SIGTERM) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    if (chdir(cwd.c_str()) != 0) _exit(127);
    std::vector<std::string> strings = {Runfiles(binary)};
    strings.insert(strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  ToolResult r;
  bool signalled = false;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) {
    r.output.append(buffer, n);
    if (!signal_on.empty() && !signalled && r.output.find(signal_on) != std::string::npos) {
      kill(pid, signal_number);
      signalled = true;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  const std::vector<std::string> lines = absl::StrSplit(r.output, '\n', absl::SkipEmpty());
  if (!lines.empty()) r.last_line = lines.back();
  return r;
}

// Every regular file under `dir` with its size.
inline std::map<std::string, uintmax_t> Listing(const std::string& dir) {
  std::map<std::string, uintmax_t> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files[entry.path().string()] = entry.file_size();
  }
  return files;
}

// A failure reported as "<tool>: error: ..." with a non-zero exit, no stack trace or abort.
inline void ExpectOneCleanErrorLine(const ToolResult& r, const std::string& tool) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::HasSubstr(tool + ": error: "));
  EXPECT_THAT(r.output, ::testing::Not(::testing::HasSubstr("frame #")));
  EXPECT_THAT(r.output, ::testing::Not(::testing::HasSubstr("Aborted")));
  EXPECT_THAT(r.output, ::testing::Not(::testing::HasSubstr("*** Check failure")));
}

}  // namespace pact::testing

#endif  // PACT_TESTS_TOOL_RUNNER_H_
