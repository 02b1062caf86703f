// Status propagation helpers for absl::Status / absl::StatusOr, shared by every
// layer. Debian's Abseil (20220623) ships no such macros, so they live here once.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// when it is not OK.
#define TRIBUTARY_RETURN_IF_ERROR(expr)                  \
  do {                                                   \
    if (::absl::Status tributary_status_ = (expr);       \
        !tributary_status_.ok()) {                       \
      return tributary_status_;                          \
    }                                                    \
  } while (false)

#define TRIBUTARY_CONCAT_INNER_(a, b) a##b
#define TRIBUTARY_CONCAT_(a, b) TRIBUTARY_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise move-assigns the value to `lhs`, which may
// be a declaration: TRIBUTARY_ASSIGN_OR_RETURN(auto store, Open(...));
#define TRIBUTARY_ASSIGN_OR_RETURN(lhs, rexpr)                             \
  TRIBUTARY_ASSIGN_OR_RETURN_IMPL_(                                        \
      TRIBUTARY_CONCAT_(tributary_statusor_, __LINE__), lhs, rexpr)

#define TRIBUTARY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();     \
  lhs = std::move(statusor).value()
