// The engine's spdlog logger, named "engine". Thread-safe.
#pragma once

#include <memory>

#include "spdlog/spdlog.h"

namespace tributary::internal {

std::shared_ptr<spdlog::logger> EngineLogger();

}  // namespace tributary::internal
