// The operators' spdlog logger, named "operators". Thread-safe.
#pragma once

#include <memory>

#include "spdlog/spdlog.h"

namespace tributary::internal {

std::shared_ptr<spdlog::logger> OperatorsLogger();

}  // namespace tributary::internal
