#include "engine/internal/log.h"

#include "spdlog/sinks/stdout_color_sinks.h"

namespace tributary::internal {

std::shared_ptr<spdlog::logger> EngineLogger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto existing = spdlog::get("engine");
    return existing ? existing : spdlog::stderr_color_mt("engine");
  }();
  return logger;
}

}  // namespace tributary::internal
