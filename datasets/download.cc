#include "datasets/download.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "datasets/file_io.h"
#include "datasets/md5.h"
#include "glog/logging.h"

namespace pact::datasets {
namespace {

constexpr absl::Duration kProgressEvery = absl::Seconds(10);
constexpr size_t kErrorBodyBytes = 2048;

void InitCurlOnce() {
  static std::once_flag once;
  // Not thread-safe itself, so exactly once, before any handle exists.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f MB", bytes / 1e6);
  return text;
}

// `hint` as a sentence to append ("" stays "").
std::string Hint(absl::string_view hint) { return hint.empty() ? "" : absl::StrCat("; ", hint); }

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

// One HTTP attempt's state, shared with libcurl's callbacks.
struct Attempt {
  int fd = -1;
  int64_t offset = 0;  // .part size when the request was sent (the Range start)
  std::string folder;  // for the free-space check
  std::string url;
  // The response being received (a redirect starts a new one).
  long status = 0;
  bool headers_done = false;
  int64_t content_length = -1;
  int64_t range_start = -1;  // from "Content-Range: bytes start-end/total"
  int64_t range_total = -1;  // from "Content-Range: bytes */total" (416)
  // Results.
  int64_t file_size = 0;  // bytes in the .part now
  int64_t written = 0;    // bytes written by this attempt
  std::string error_body;
  absl::Status local_error;  // a local failure that aborted the transfer (disk, write)
  absl::Time start;
  absl::Time last_log;
};

bool Success(long status) { return status >= 200 && status < 300; }

// Called when the final headers of a response are in: positions the .part for the body.
bool OnHeadersDone(Attempt* a) {
  if (!Success(a->status)) return true;
  int64_t keep = 0;  // bytes of the .part the body continues
  if (a->status == 206) {
    if (a->range_start < 0 || a->range_start > a->offset) {
      a->local_error = absl::UnavailableError(
          absl::StrCat(a->url, ": the server answered a request for bytes ", a->offset,
                       "- with a range starting at ", a->range_start));
      return false;
    }
    keep = a->range_start;
  } else if (a->offset > 0) {
    LOG(WARNING) << a->url << ": the server ignores Range requests; downloading from the start";
  }
  if (::ftruncate(a->fd, keep) != 0 || ::lseek(a->fd, keep, SEEK_SET) < 0) {
    a->local_error = absl::ErrnoToStatus(errno, "cannot write the partial download");
    return false;
  }
  a->file_size = keep;
  struct statvfs fs;
  if (a->content_length > 0 && ::statvfs(a->folder.c_str(), &fs) == 0) {
    const int64_t available = static_cast<int64_t>(fs.f_bavail) * fs.f_frsize;
    if (available < a->content_length) {
      a->local_error = absl::ResourceExhaustedError(
          absl::StrCat(a->url, " needs ", Megabytes(a->content_length), " more but ", a->folder,
                       " has ", Megabytes(available), " free"));
      return false;
    }
  }
  return true;
}

size_t HeaderCallback(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t total = size * count;
  absl::string_view line(data, total);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response (after a redirect or 100-continue)
    a->status = 0;
    a->headers_done = false;
    a->content_length = a->range_start = a->range_total = -1;
    const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int status = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &status)) a->status = status;
    return total;
  }
  line = absl::StripAsciiWhitespace(line);
  if (line.empty()) {
    a->headers_done = true;
    return OnHeadersDone(a) ? total : 0;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return total;
  const absl::string_view name = line.substr(0, colon);
  const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  if (absl::EqualsIgnoreCase(name, "Content-Length")) {
    int64_t n;
    if (absl::SimpleAtoi(value, &n)) a->content_length = n;
  } else if (absl::EqualsIgnoreCase(name, "Content-Range")) {
    absl::string_view spec = value;
    if (absl::ConsumePrefix(&spec, "bytes ")) {
      const std::pair<absl::string_view, absl::string_view> range_total =
          absl::StrSplit(spec, absl::MaxSplits('/', 1));
      const absl::string_view start = range_total.first.substr(0, range_total.first.find('-'));
      int64_t n;
      if (absl::SimpleAtoi(start, &n)) a->range_start = n;
      if (absl::SimpleAtoi(range_total.second, &n)) a->range_total = n;
    }
  }
  return total;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t total = size * count;
  if (!Success(a->status) || !a->headers_done) {
    // An error page: keep its start for the message.
    a->error_body.append(
        data, std::min(total, kErrorBodyBytes - std::min(kErrorBodyBytes, a->error_body.size())));
    return total;
  }
  size_t done = 0;
  while (done < total) {
    const ssize_t n = ::write(a->fd, data + done, total - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      a->local_error = absl::ErrnoToStatus(errno, "cannot write the download");
      return 0;  // aborts the transfer
    }
    done += static_cast<size_t>(n);
  }
  a->written += static_cast<int64_t>(total);
  a->file_size += static_cast<int64_t>(total);
  return total;
}

int ProgressCallback(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* a = static_cast<Attempt*>(user);
  const absl::Time t = absl::Now();
  if (t - a->last_log < kProgressEvery || !Success(a->status)) return 0;
  a->last_log = t;
  const double seconds = absl::ToDoubleSeconds(t - a->start);
  LOG(INFO) << a->url << ": " << Megabytes(a->file_size)
            << (total > 0 ? absl::StrCat(" of ", Megabytes(a->offset + total)) : std::string())
            << " (" << Megabytes(static_cast<int64_t>(now / std::max(seconds, 1e-3))) << "/s)";
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// Runs one HTTP GET of request.url into the open .part `fd` (holding `offset` bytes).
CURLcode RunAttempt(const DownloadRequest& request, Attempt* a, std::string* curl_error) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) {
    *curl_error = "curl_easy_init failed";
    return CURLE_FAILED_INIT;
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  for (const std::string& header : request.headers) {
    headers.reset(curl_slist_append(headers.release(), header.c_str()));
  }
  char error_buffer[CURL_ERROR_SIZE] = {};
  const std::string range = absl::StrCat(a->offset, "-");
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // loader threads may be running
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A transfer slower than 1 KB/s for a minute is a stall: abort it and resume.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "pact-qat-datasets (libcurl)");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &ProgressCallback);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (headers != nullptr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  // CURLOPT_RANGE rather than RESUME_FROM: a server that ignores ranges answers 200, which we
  // handle by starting over, where RESUME_FROM would fail the transfer.
  if (a->offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) a->status = status;
  *curl_error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  return code;
}

// The first line of an error page, shortened, for messages.
std::string ServerSays(absl::string_view body) {
  std::string text(absl::StripAsciiWhitespace(body.substr(0, 300)));
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text.empty() ? "" : absl::StrCat(" (server says: ", text, ")");
}

bool RetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

absl::Status CheckMd5(const std::string& path, absl::string_view expected) {
  auto actual = Md5File(path);
  if (!actual.ok()) return actual.status();
  if (absl::EqualsIgnoreCase(*actual, expected)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("MD5 of ", path, " is ", *actual, ", expected ",
                                          absl::AsciiStrToLower(expected)));
}

// True if `path` (relative) is absolute or steps out of the destination with "..".
bool UnsafeEntryPath(absl::string_view path) {
  if (path.empty() || path[0] == '/') return true;
  for (const absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return true;
  }
  return false;
}

// Transfers request.url into `part` (resuming it), retrying as DownloadFile describes. OK once
// the server has sent the whole file.
absl::Status TransferWithRetries(const DownloadRequest& request, const std::string& part,
                                 const std::string& folder) {
  double delay = request.retry_delay_seconds;
  absl::Status last_error;
  for (int attempt = 1;; ++attempt) {
    Attempt a;
    a.url = request.url;
    a.folder = folder;
    a.offset = std::max<int64_t>(0, FileSize(part));
    a.file_size = a.offset;
    a.start = a.last_log = absl::Now();
    a.fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (a.fd < 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", part));
    }
    if (attempt == 1) {
      LOG(INFO) << "downloading " << request.url << " to " << request.destination
                << (a.offset > 0 ? absl::StrCat(" (resuming after ", Megabytes(a.offset), ")")
                                 : std::string());
    }
    std::string curl_error;
    const CURLcode code = RunAttempt(request, &a, &curl_error);
    ::close(a.fd);
    if (!a.local_error.ok()) {
      return absl::Status(a.local_error.code(), absl::StrCat(a.local_error.message(), " (", part,
                                                             ")", Hint(request.manual_hint)));
    }
    bool retry = false;
    if (code == CURLE_OK && Success(a.status)) return absl::OkStatus();
    if (code == CURLE_OK && a.status == 416 && a.offset > 0) {
      // Nothing left to send: the .part is whole if its size is the file's.
      if (a.range_total == a.offset) return absl::OkStatus();
      LOG(WARNING) << part << " holds " << a.offset << " bytes but " << request.url << " has "
                   << a.range_total << "; downloading it afresh";
      std::remove(part.c_str());
      last_error = absl::UnavailableError(absl::StrCat(request.url, ": HTTP 416"));
      retry = true;
    } else if (code == CURLE_OK) {
      const std::string what =
          absl::StrCat(request.url, ": HTTP ", a.status, ServerSays(a.error_body));
      if (a.status == 401 || a.status == 403) {
        return absl::PermissionDeniedError(
            absl::StrCat(what, Hint(request.permission_hint), Hint(request.manual_hint)));
      }
      if (a.status == 404 || a.status == 410) {
        return absl::NotFoundError(
            absl::StrCat(what, "; check the URL", Hint(request.manual_hint)));
      }
      last_error = absl::UnavailableError(what);
      retry = a.status == 408 || a.status == 429 || a.status >= 500;
    } else {
      last_error =
          absl::UnavailableError(absl::StrCat("cannot download ", request.url, ": ", curl_error));
      retry = a.written > 0 || RetryableCurlError(code);
    }
    if (!retry) {
      return absl::UnavailableError(absl::StrCat(last_error.message(), Hint(request.manual_hint)));
    }
    if (attempt >= request.max_attempts) {
      const int64_t kept = std::max<int64_t>(0, FileSize(part));
      return absl::UnavailableError(
          absl::StrCat(last_error.message(), " (", attempt, " attempts)",
                       kept > 0 ? absl::StrCat("; the ", Megabytes(kept), " received are kept in ",
                                               part, " and the next run resumes from there")
                                : std::string(),
                       Hint(request.manual_hint)));
    }
    LOG(WARNING) << last_error.message() << "; retrying in " << delay << " s (attempt "
                 << attempt + 1 << " of " << request.max_attempts << ")";
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    delay *= 2;
  }
}

}  // namespace

absl::Status DownloadFile(const DownloadRequest& request) {
  InitCurlOnce();
  const std::string& destination = request.destination;
  if (PathExists(destination)) {
    if (request.expected_md5.empty()) return absl::OkStatus();
    const absl::Status status = CheckMd5(destination, request.expected_md5);
    if (status.ok()) return status;
    return absl::DataLossError(
        absl::StrCat(status.message(),
                     "; it was there before this download and is left alone: delete or "
                     "replace it",
                     Hint(request.manual_hint)));
  }
  const std::filesystem::path folder = std::filesystem::path(destination).parent_path();
  std::error_code error;
  if (!folder.empty()) std::filesystem::create_directories(folder, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", folder.string(), ": ",
                                                    error.message(), Hint(request.manual_hint)));
  }
  const std::string part = destination + ".part";
  const absl::Status transferred =
      TransferWithRetries(request, part, folder.empty() ? "." : folder.string());
  if (!transferred.ok()) {
    if (FileSize(part) == 0) std::remove(part.c_str());  // nothing worth resuming
    return transferred;
  }
  if (!request.expected_md5.empty()) {
    const absl::Status status = CheckMd5(part, request.expected_md5);
    if (!status.ok()) {
      // Our own partial file: remove it, or every later run would fail the same way.
      std::remove(part.c_str());
      return absl::DataLossError(
          absl::StrCat(request.url, ": ", status.message(),
                       "; deleted the bad download (a mirror or proxy "
                       "may have served a different file); run again to download it afresh",
                       Hint(request.manual_hint)));
    }
  }
  if (std::rename(part.c_str(), destination.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot rename ", part, " to ", destination));
  }
  LOG(INFO) << "downloaded " << destination << " (" << Megabytes(FileSize(destination)) << ")";
  return absl::OkStatus();
}

absl::StatusOr<ExtractStats> ExtractArchive(const std::string& archive_path,
                                            const std::string& destination,
                                            const ArchiveEntryMapper& mapper) {
  struct ArchiveDeleter {
    void operator()(archive* a) const { archive_read_free(a); }
  };
  std::unique_ptr<archive, ArchiveDeleter> reader(archive_read_new());
  archive* a = reader.get();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  if (!PathExists(archive_path)) {
    return absl::NotFoundError(absl::StrCat("archive ", archive_path, " does not exist"));
  }
  if (archive_read_open_filename(a, archive_path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return absl::DataLossError(
        absl::StrCat("cannot read archive ", archive_path, ": ", archive_error_string(a)));
  }
  ExtractStats stats;
  std::vector<char> buffer(1 << 20);
  absl::Time last_log = absl::Now();
  int64_t entries = 0;
  while (true) {
    archive_entry* entry = nullptr;
    const int rc = archive_read_next_header(a, &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      return absl::DataLossError(absl::StrCat(archive_path, ": corrupt or truncated archive after ",
                                              entries, " entries: ", archive_error_string(a),
                                              "; delete it to download it again"));
    }
    if (rc == ARCHIVE_WARN) LOG(WARNING) << archive_path << ": " << archive_error_string(a);
    ++entries;
    const char* raw_name = archive_entry_pathname(entry);
    const std::string name = raw_name != nullptr ? raw_name : "";
    const mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR) {
      VLOG(1) << archive_path << ": skipping " << name << " (not a file or folder)";
      continue;
    }
    std::string relative = name;
    if (mapper != nullptr) {
      absl::StatusOr<std::string> mapped = mapper(name);
      if (!mapped.ok()) return mapped.status();
      relative = *std::move(mapped);
      if (relative.empty()) continue;
    }
    absl::string_view clean = relative;
    while (absl::ConsumePrefix(&clean, "./")) {
    }
    if (type == AE_IFDIR && (clean.empty() || clean == ".")) continue;
    if (UnsafeEntryPath(clean)) {
      return absl::DataLossError(absl::StrCat(archive_path, ": entry '", name,
                                              "' would be written outside ", destination));
    }
    const std::string out = JoinPath(destination, clean);
    std::error_code error;
    if (type == AE_IFDIR) {
      std::filesystem::create_directories(out, error);
      if (error)
        return absl::InternalError(absl::StrCat("cannot create ", out, ": ", error.message()));
      continue;
    }
    if (PathExists(out)) {
      ++stats.skipped_existing;  // never overwrite: it may be the user's
      continue;
    }
    std::filesystem::create_directories(std::filesystem::path(out).parent_path(), error);
    if (error)
      return absl::InternalError(
          absl::StrCat("cannot create the folder of ", out, ": ", error.message()));
    const std::string temporary = out + ".pact-extracting";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", temporary));
    absl::Status status;
    while (status.ok()) {
      const la_ssize_t n = archive_read_data(a, buffer.data(), buffer.size());
      if (n == 0) break;
      if (n < 0) {
        status = absl::DataLossError(absl::StrCat(archive_path, ": cannot read entry '", name,
                                                  "': ", archive_error_string(a),
                                                  "; delete the archive to download it again"));
        break;
      }
      for (la_ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(fd, buffer.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          status = absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", temporary));
          break;
        }
        done += w;
      }
      stats.bytes += n;
    }
    if (::close(fd) != 0 && status.ok()) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", temporary));
    }
    if (status.ok() && std::rename(temporary.c_str(), out.c_str()) != 0) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("cannot rename ", temporary));
    }
    if (!status.ok()) {
      std::remove(temporary.c_str());
      return status;
    }
    ++stats.files;
    if (absl::Now() - last_log >= kProgressEvery) {
      last_log = absl::Now();
      LOG(INFO) << archive_path << ": extracted " << stats.files << " files ("
                << Megabytes(stats.bytes) << ")";
    }
  }
  return stats;
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

HfToken FindHfToken() {
  HfToken result;
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    const std::string value(absl::StripAsciiWhitespace(GetEnv(name)));
    if (!value.empty()) return {value, name};
  }
  std::vector<std::string> files;
  if (!GetEnv("HF_TOKEN_PATH").empty()) files.push_back(GetEnv("HF_TOKEN_PATH"));
  if (!GetEnv("HF_HOME").empty()) files.push_back(JoinPath(GetEnv("HF_HOME"), "token"));
  if (!GetEnv("XDG_CACHE_HOME").empty()) {
    files.push_back(JoinPath(GetEnv("XDG_CACHE_HOME"), "huggingface/token"));
  }
  if (!GetEnv("HOME").empty())
    files.push_back(JoinPath(GetEnv("HOME"), ".cache/huggingface/token"));
  for (const std::string& file : files) {
    absl::StatusOr<std::string> contents = ReadFile(file);
    if (!contents.ok()) continue;
    const std::string token(absl::StripAsciiWhitespace(*contents));
    if (!token.empty()) return {token, file};
  }
  result.source =
      absl::StrCat("env HF_TOKEN", files.empty() ? "" : " and ", absl::StrJoin(files, ", "));
  return result;
}

std::string HfEndpoint() {
  std::string endpoint = GetEnv("HF_ENDPOINT");
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint.empty() ? "https://huggingface.co" : endpoint;
}

}  // namespace pact::datasets
