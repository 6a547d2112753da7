#include "datasets/http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"

namespace pact::datasets::testing {
namespace {

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 206:
      return "Partial Content";
    case 302:
      return "Found";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 416:
      return "Range Not Satisfiable";
    default:
      return "Status";
  }
}

}  // namespace

HttpTestServer::HttpTestServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK_GE(listen_fd_, 0) << "socket: " << errno;
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // ephemeral
  CHECK_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0)
      << "bind: " << errno;
  CHECK_EQ(::listen(listen_fd_, 16), 0);
  socklen_t length = sizeof(address);
  CHECK_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

HttpTestServer::~HttpTestServer() {
  stopping_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> handlers;
  {
    absl::MutexLock lock(&mu_);
    handlers.swap(handlers_);
  }
  for (std::thread& t : handlers) t.join();
}

void HttpTestServer::Serve(const std::string& path, Resource resource) {
  absl::MutexLock lock(&mu_);
  resources_[path] = std::move(resource);
}

std::string HttpTestServer::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

std::vector<HttpTestServer::Request> HttpTestServer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::vector<HttpTestServer::Request> HttpTestServer::RequestsFor(absl::string_view path) const {
  std::vector<Request> result;
  for (Request& r : requests()) {
    if (r.path == path) result.push_back(std::move(r));
  }
  return result;
}

void HttpTestServer::AcceptLoop() {
  while (!stopping_) {
    pollfd p = {listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, /*timeout_ms=*/50) <= 0) continue;  // wakes up to see `stopping_`
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    absl::MutexLock lock(&mu_);
    handlers_.emplace_back([this, fd] { Handle(fd); });
  }
}

void HttpTestServer::Handle(int fd) {
  // One request per connection ("Connection: close"); GETs have no body.
  std::string head;
  char chunk[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < (1 << 16)) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    head.append(chunk, static_cast<size_t>(n));
  }
  Request request;
  const std::string header_block = head.substr(0, head.find("\r\n\r\n"));
  const std::vector<absl::string_view> lines = absl::StrSplit(header_block, "\r\n");
  if (!lines.empty()) {
    std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
    if (first.size() >= 2) request.path = std::string(first[1]);
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) continue;
      request.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
  }
  Resource resource;
  bool found = false;
  bool drop = false;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    auto it = resources_.find(request.path);
    if (it != resources_.end()) {
      found = true;
      resource = it->second;
      if (it->second.drops > 0) {
        --it->second.drops;
        drop = true;
      }
    }
  }
  int status = found ? resource.status : 404;
  std::string body = found ? resource.body : "no such fixture";
  std::string extra;
  if (found && !resource.bearer_token.empty()) {
    auto auth = request.headers.find("authorization");
    if (auth == request.headers.end() ||
        auth->second != absl::StrCat("Bearer ", resource.bearer_token)) {
      status = 401;
      body = R"({"error":"Invalid credentials in Authorization header"})";
    }
  }
  if (status == 200 && !resource.redirect.empty()) {
    status = 302;
    extra = absl::StrCat("Location: ", resource.redirect, "\r\n");
    body.clear();
  }
  auto range = request.headers.find("range");
  if (status == 200 && resource.ranges && range != request.headers.end()) {
    absl::string_view spec = range->second;
    int64_t start = 0;
    if (absl::ConsumePrefix(&spec, "bytes=") &&
        absl::SimpleAtoi(spec.substr(0, spec.find('-')), &start)) {
      const int64_t size = static_cast<int64_t>(body.size());
      if (start >= size) {
        status = 416;
        extra = absl::StrCat("Content-Range: bytes */", size, "\r\n");
        body.clear();
      } else {
        status = 206;
        extra = absl::StrCat("Content-Range: bytes ", start, "-", size - 1, "/", size, "\r\n");
        body = body.substr(static_cast<size_t>(start));
      }
    }
  }
  const std::string header =
      absl::StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\nContent-Length: ", body.size(),
                   "\r\nConnection: close\r\n", extra, "\r\n");
  if (SendAll(fd, header)) {
    if (drop) {
      SendAll(fd, absl::string_view(body).substr(
                      0, std::min<size_t>(body.size(), static_cast<size_t>(resource.drop_after))));
    } else {
      SendAll(fd, body);
    }
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

}  // namespace pact::datasets::testing
