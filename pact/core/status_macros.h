// Status propagation macros. Debian's Abseil 20220623 has none; these are prefixed PACT_ so a
// later Abseil's ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN can replace them mechanically.
#ifndef PACT_CORE_STATUS_MACROS_H_
#define PACT_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define PACT_STATUS_CONCAT_INNER_(a, b) a##b
#define PACT_STATUS_CONCAT_(a, b) PACT_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define PACT_RETURN_IF_ERROR(expr)               \
  do {                                           \
    const ::absl::Status pact_status_ = (expr);  \
    if (!pact_status_.ok()) return pact_status_; \
  } while (false)

// Like PACT_RETURN_IF_ERROR, prefixing the message with `context` ("building model: ...").
#define PACT_RETURN_WITH_CONTEXT_IF_ERROR(expr, ...)                                   \
  do {                                                                                 \
    const ::absl::Status pact_status_ = (expr);                                        \
    if (!pact_status_.ok()) {                                                          \
      return ::pact::internal::WithContext(pact_status_, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                  \
  } while (false)

// `lhs = value` of an absl::StatusOr<T> expression, or returns its error.
#define PACT_ASSIGN_OR_RETURN(lhs, expr) \
  PACT_ASSIGN_OR_RETURN_IMPL_(PACT_STATUS_CONCAT_(pact_statusor_, __LINE__), lhs, expr)

#define PACT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

// Like PACT_ASSIGN_OR_RETURN, prefixing an error's message with `context`.
#define PACT_ASSIGN_OR_RETURN_WITH_CONTEXT(lhs, expr, ...)                                     \
  PACT_ASSIGN_OR_RETURN_WITH_CONTEXT_IMPL_(PACT_STATUS_CONCAT_(pact_statusor_, __LINE__), lhs, \
                                           expr, __VA_ARGS__)

#define PACT_ASSIGN_OR_RETURN_WITH_CONTEXT_IMPL_(statusor, lhs, expr, ...)                \
  auto statusor = (expr);                                                                 \
  if (!statusor.ok()) {                                                                   \
    return ::pact::internal::WithContext(statusor.status(), ::absl::StrCat(__VA_ARGS__)); \
  }                                                                                       \
  lhs = std::move(statusor).value()

namespace pact::internal {

// Same code, message "<context>: <original message>".
inline ::absl::Status WithContext(const ::absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return ::absl::Status(status.code(), ::absl::StrCat(context, ": ", status.message()));
}

}  // namespace pact::internal

#endif  // PACT_CORE_STATUS_MACROS_H_
