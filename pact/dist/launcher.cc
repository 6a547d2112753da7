#include "pact/dist/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "pact/core/file.h"

extern char** environ;

namespace pact::dist {
namespace {

constexpr int kMaxWorkers = 1024;
constexpr int kForwarded[] = {SIGINT, SIGTERM};
// SIGINT/SIGTERM received, counted by the handler (async-signal-safe: atomics only) and
// forwarded by the wait loop, which knows every worker: forwarding from the handler could miss
// a worker forked but not yet recorded when the signal lands.
std::atomic<int> g_received[2];

void CountSignal(int signal) { g_received[signal == SIGINT ? 0 : 1].fetch_add(1); }

std::string NormalizeName(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

std::string Describe(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace

std::vector<std::string> RemoveFlags(const std::vector<std::string>& args,
                                     const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (i == 0 || arg.size() < 2 || arg[0] != '-' || arg == "--") {
      out.push_back(arg);
      if (arg == "--") out.insert(out.end(), args.begin() + i + 1, args.end());
      if (arg == "--") break;
      continue;
    }
    const size_t start = arg[1] == '-' ? 2 : 1;
    const size_t eq = arg.find('=');
    const std::string name =
        NormalizeName(arg.substr(start, eq == std::string::npos ? std::string::npos : eq - start));
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      out.push_back(arg);
      continue;
    }
    if (eq == std::string::npos && i + 1 < args.size()) ++i;  // "--name value"
  }
  return out;
}

absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string error = strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("picking a free port: ", error));
  }
  close(fd);
  return static_cast<int>(ntohs(address.sin_port));
}

absl::StatusOr<int> RunLocalWorkers(const LaunchOptions& options) {
  if (options.nproc_per_node < 1 || options.nproc_per_node > kMaxWorkers) {
    return absl::InvalidArgumentError(absl::StrCat("--nproc_per_node: must be in [1, ", kMaxWorkers,
                                                   "], got ", options.nproc_per_node));
  }
  if (options.nnodes < 1 || options.node_rank < 0 || options.node_rank >= options.nnodes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--nnodes/--node_rank: need nnodes >= 1 and 0 <= node_rank < nnodes, got nnodes ",
        options.nnodes, " and node_rank ", options.node_rank));
  }
  if (!GetEnv("RANK").empty() || !GetEnv("WORLD_SIZE").empty()) {
    return absl::InvalidArgumentError(
        "--nproc_per_node starts the workers and sets RANK/WORLD_SIZE itself; unset them, or "
        "drop --nproc_per_node to run as one worker of an externally launched job");
  }
  if (options.args.empty()) return absl::InvalidArgumentError("launcher: no program arguments");

  std::string master_addr = options.master_addr;
  if (master_addr.empty()) master_addr = GetEnv("MASTER_ADDR");
  if (master_addr.empty()) {
    if (options.nnodes > 1) {
      return absl::InvalidArgumentError(
          "--nnodes > 1 needs MASTER_ADDR: the address of node 0, reachable from every node");
    }
    master_addr = "127.0.0.1";
  }
  int master_port = options.master_port;
  if (master_port == 0 && !GetEnv("MASTER_PORT").empty() &&
      !absl::SimpleAtoi(GetEnv("MASTER_PORT"), &master_port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("MASTER_PORT='", GetEnv("MASTER_PORT"), "': not a port number"));
  }
  if (master_port == 0) {
    if (options.nnodes == 1) {
      absl::StatusOr<int> port = PickFreePort();
      if (!port.ok()) return port.status();
      master_port = *port;
    } else {
      master_port = 29500;
    }
  }

  const int n = options.nproc_per_node;
  const int world = n * options.nnodes;
  // Everything exec needs is built before fork: the child may only make async-signal-safe calls.
  std::vector<char*> argv;
  for (const std::string& arg : options.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const char* const kOurs[] = {"RANK=",        "LOCAL_RANK=",  "WORLD_SIZE=", "LOCAL_WORLD_SIZE=",
                               "MASTER_ADDR=", "MASTER_PORT=", "GROUP_RANK="};
  std::vector<std::string> inherited;
  for (char** e = environ; *e != nullptr; ++e) {
    bool ours = false;
    for (const char* prefix : kOurs) ours = ours || absl::StartsWith(*e, prefix);
    if (!ours) inherited.push_back(*e);
  }
  std::vector<std::vector<std::string>> env_strings(n, inherited);
  std::vector<std::vector<char*>> envp(n);
  for (int i = 0; i < n; ++i) {
    const int rank = options.node_rank * n + i;
    for (const std::string& var :
         {absl::StrCat("RANK=", rank), absl::StrCat("LOCAL_RANK=", i),
          absl::StrCat("WORLD_SIZE=", world), absl::StrCat("LOCAL_WORLD_SIZE=", n),
          absl::StrCat("MASTER_ADDR=", master_addr), absl::StrCat("MASTER_PORT=", master_port),
          absl::StrCat("GROUP_RANK=", options.node_rank)}) {
      env_strings[i].push_back(var);
    }
    for (std::string& var : env_strings[i]) envp[i].push_back(var.data());
    envp[i].push_back(nullptr);
  }

  LOG(INFO) << "launching " << n << " worker processes (ranks " << options.node_rank * n << ".."
            << options.node_rank * n + n - 1 << " of " << world << "), rendezvous at "
            << master_addr << ":" << master_port;
  for (std::atomic<int>& count : g_received) count.store(0);
  struct sigaction count {};
  count.sa_handler = CountSignal;
  sigemptyset(&count.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &count, &old_int);
  sigaction(SIGTERM, &count, &old_term);
  const pid_t parent = getpid();

  std::map<pid_t, int> rank_of;  // running workers
  absl::Status start_error;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a launcher that was killed
      if (getppid() != parent) _exit(127);
      if (!options.working_directory.empty() && chdir(options.working_directory.c_str()) != 0) {
        const char message[] = "launcher: cannot enter the working directory\n";
        (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
        _exit(127);
      }
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      execve(options.executable.c_str(), argv.data(), envp[i].data());
      const char message[] = "launcher: exec of the worker failed\n";
      (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
      _exit(127);
    }
    if (pid < 0) {
      start_error = absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
      break;
    }
    rank_of[pid] = options.node_rank * n + i;
  }
  if (!start_error.ok()) {
    for (const auto& [pid, rank] : rank_of) kill(pid, SIGKILL);
  }

  int failures = 0;
  int forwarded[2] = {0, 0};
  absl::Time deadline = absl::InfiniteFuture();
  while (!rank_of.empty()) {
    // Each signal received reaches every running worker exactly once.
    for (int k = 0; k < 2; ++k) {
      for (; forwarded[k] < g_received[k].load(); ++forwarded[k]) {
        for (const auto& [pid, rank] : rank_of) kill(pid, kForwarded[k]);
      }
    }
    if (absl::Now() > deadline) {
      for (const auto& [straggler, rank] : rank_of) {
        LOG(ERROR) << "rank " << rank << " (pid " << straggler << ") still runs " << options.grace
                   << " after a failure; killing it";
        kill(straggler, SIGKILL);
      }
      deadline = absl::InfiniteFuture();
    }
    for (auto it = rank_of.begin(); it != rank_of.end();) {
      int status = 0;
      const pid_t pid = it->first;
      const int rank = it->second;
      const pid_t done = waitpid(pid, &status, WNOHANG);
      if (done == 0 || (done < 0 && errno == EINTR)) {
        ++it;
        continue;
      }
      it = rank_of.erase(it);
      if (done < 0) {
        LOG(ERROR) << "rank " << rank << " (pid " << pid << "): waitpid: " << strerror(errno);
      } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        continue;
      } else {
        LOG(ERROR) << "rank " << rank << " (pid " << pid << ") " << Describe(status);
      }
      if (failures++ == 0) deadline = absl::Now() + options.grace;
    }
    if (!rank_of.empty()) absl::SleepFor(absl::Milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!start_error.ok()) return start_error;
  if (failures > 0) {
    LOG(ERROR) << failures << " of " << n << " worker processes failed";
    return 1;
  }
  return 0;
}

}  // namespace pact::dist
