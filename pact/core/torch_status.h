// The one boundary between LibTorch's exceptions and our absl::Status world.
//
// Exceptions are allowed inside tensor code (TORCH_CHECK is the local idiom there) and are
// converted exactly once, where our code calls into it: factories, training steps, checkpoint
// IO and main. Mapping: c10::ValueError / IndexError / TypeError -> InvalidArgument, any
// other c10::Error or std::exception -> Internal. The message drops the C++ backtrace; the
// full text is logged at VLOG(1).
#ifndef PACT_CORE_TORCH_STATUS_H_
#define PACT_CORE_TORCH_STATUS_H_

#include <exception>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "c10/util/Exception.h"
#include "glog/logging.h"

namespace pact {
namespace internal {

inline absl::Status CurrentTorchExceptionToStatus(absl::string_view what) {
  try {
    throw;
  } catch (const c10::ValueError& e) {
    VLOG(1) << e.what();
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const c10::IndexError& e) {
    VLOG(1) << e.what();
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const c10::TypeError& e) {
    VLOG(1) << e.what();
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    VLOG(1) << e.what();
    return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, ": unknown exception"));
  }
}

template <typename T>
struct IsStatusOr : std::false_type {};
template <typename T>
struct IsStatusOr<absl::StatusOr<T>> : std::true_type {};

}  // namespace internal

// Runs `fn` and converts a LibTorch exception into a Status. `fn` may return void (the
// result is absl::Status), a value T (absl::StatusOr<T>), or a Status/StatusOr itself
// (returned unchanged when nothing throws).
template <typename Fn>
auto TorchCall(absl::string_view what, Fn&& fn) {
  using R = std::invoke_result_t<Fn>;
  if constexpr (std::is_void_v<R>) {
    try {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } catch (...) {
      return internal::CurrentTorchExceptionToStatus(what);
    }
  } else if constexpr (std::is_same_v<R, absl::Status>) {
    try {
      return std::forward<Fn>(fn)();
    } catch (...) {
      return internal::CurrentTorchExceptionToStatus(what);
    }
  } else {
    using Result = std::conditional_t<internal::IsStatusOr<R>::value, R, absl::StatusOr<R>>;
    try {
      return Result(std::forward<Fn>(fn)());
    } catch (...) {
      return Result(internal::CurrentTorchExceptionToStatus(what));
    }
  }
}

}  // namespace pact

#endif  // PACT_CORE_TORCH_STATUS_H_
