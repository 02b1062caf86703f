// Debian's Abseil (20220623) is built with ABSL_OPTION_USE_STD_STRING_VIEW=0,
// so absl::string_view is its own type and absl::StrCat, absl::Status and
// friends do not accept a std::string_view. Convert at the call with Sv().
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace tributary {

inline absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view Sv(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace tributary
