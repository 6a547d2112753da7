#include "pact/dist/test_workers.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pact/dist/launcher.h"

extern char** environ;

namespace pact::dist::testing {

std::optional<std::string> RoleFromEnvironment() {
  const char* role = std::getenv(kRoleVar);
  if (role == nullptr || *role == '\0') return std::nullopt;
  return std::string(role);
}

absl::StatusOr<Workers> Workers::Start(const std::string& role, int world,
                                       const std::map<std::string, std::string>& env,
                                       const std::string& log_dir, std::vector<int> ranks) {
  Workers workers;
  workers.role_ = role;
  workers.log_dir_ = log_dir;
  absl::StatusOr<int> port = PickFreePort();
  if (!port.ok()) return port.status();
  workers.port_ = *port;
  if (ranks.empty()) {
    for (int r = 0; r < world; ++r) ranks.push_back(r);
  }
  std::filesystem::create_directories(log_dir);
  for (int rank : ranks) {
    std::map<std::string, std::string> vars = env;
    vars[kRoleVar] = role;
    vars["RANK"] = std::to_string(rank);
    vars["LOCAL_RANK"] = std::to_string(rank);
    vars["WORLD_SIZE"] = std::to_string(world);
    vars["LOCAL_WORLD_SIZE"] = std::to_string(world);
    vars["MASTER_ADDR"] = "127.0.0.1";
    vars["MASTER_PORT"] = std::to_string(workers.port_);
    std::vector<std::string> strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      const std::string name = entry.substr(0, entry.find('='));
      if (vars.count(name) == 0) strings.push_back(entry);
    }
    for (const auto& [name, value] : vars) strings.push_back(name + "=" + value);
    std::vector<char*> envp;
    for (std::string& s : strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    const std::string log = absl::StrCat(log_dir, "/", role, ".", rank, ".log");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::string exe = "/proc/self/exe";
    char* argv[] = {exe.data(), nullptr};
    pid_t pid = 0;
    const int error = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) return absl::InternalError(absl::StrCat("posix_spawn: ", strerror(error)));
    workers.pids_[rank] = pid;
  }
  return workers;
}

Workers::~Workers() {
  for (const auto& [rank, pid] : pids_) {
    if (status_.count(rank) > 0) continue;
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
  }
}

absl::StatusOr<int> Workers::Wait(int rank, absl::Duration timeout) {
  if (auto it = status_.find(rank); it != status_.end()) return it->second;
  const pid_t pid = pids_.at(rank);
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      status_[rank] = status;
      return status;
    }
    if (done < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("rank ", rank, " still runs after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::Status Workers::WaitAllOk(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string failures;
  for (const auto& [rank, pid] : pids_) {
    absl::StatusOr<int> status = Wait(rank, std::max(deadline - absl::Now(), absl::Seconds(1)));
    if (status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) continue;
    absl::StrAppend(
        &failures, "\nrank ", rank, ": ",
        status.ok() ? absl::StrCat("wait status ", *status) : status.status().ToString(),
        "; log:\n", Log(rank));
  }
  if (failures.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("workers of role ", role_, " failed:", failures));
}

std::string Workers::Log(int rank) const {
  std::ifstream in(absl::StrCat(log_dir_, "/", role_, ".", rank, ".log"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WaitForFile(const std::string& path, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!std::filesystem::exists(path)) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace pact::dist::testing
