// A tiny threaded HTTP/1.1 server on 127.0.0.1 for download tests: serves fixture bytes with
// Range support and scripted failures, and records every request. Never for production.
#ifndef PACT_DATASETS_HTTP_TEST_SERVER_H_
#define PACT_DATASETS_HTTP_TEST_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace pact::datasets::testing {

class HttpTestServer {
 public:
  struct Resource {
    int status = 200;  // e.g. 404, 401, 403, 500; 200 serves `body` (206 for a Range)
    std::string body;
    bool ranges = true;    // false: ignore Range headers (always 200 with the whole body)
    std::string redirect;  // non-empty: answer 302 to this path
    // Non-empty: requests without "Authorization: Bearer <token>" get 401.
    std::string bearer_token;
    // The first `drops` requests send the headers, then `drop_after` body bytes, then close.
    int drops = 0;
    int64_t drop_after = 0;
  };
  struct Request {
    std::string path;
    std::map<std::string, std::string> headers;  // names lowercased
  };

  // Listens on 127.0.0.1 at an ephemeral port; CHECK-fails if it cannot.
  HttpTestServer();
  ~HttpTestServer();  // stops and joins every thread
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  void Serve(const std::string& path, Resource resource);
  // "http://127.0.0.1:<port>" + path.
  std::string Url(absl::string_view path) const;
  std::vector<Request> requests() const;
  // Requests for `path`.
  std::vector<Request> RequestsFor(absl::string_view path) const;

 private:
  void AcceptLoop();
  void Handle(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable absl::Mutex mu_;
  std::map<std::string, Resource> resources_ ABSL_GUARDED_BY(mu_);
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> handlers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pact::datasets::testing

#endif  // PACT_DATASETS_HTTP_TEST_SERVER_H_
