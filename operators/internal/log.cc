#include "operators/internal/log.h"

#include "spdlog/sinks/stdout_color_sinks.h"

namespace tributary::internal {

std::shared_ptr<spdlog::logger> OperatorsLogger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto existing = spdlog::get("operators");
    return existing ? existing : spdlog::stderr_color_mt("operators");
  }();
  return logger;
}

}  // namespace tributary::internal
