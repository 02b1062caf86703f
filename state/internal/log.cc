#include "state/internal/log.h"

#include <memory>

#include "spdlog/spdlog.h"

namespace tributary::internal {

spdlog::logger& StateLog() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    constexpr char kName[] = "state";
    if (auto existing = spdlog::get(kName)) return existing;
    auto created = std::make_shared<spdlog::logger>(
        kName, spdlog::default_logger()->sinks().begin(),
        spdlog::default_logger()->sinks().end());
    created->set_level(spdlog::default_logger()->level());
    try {
      spdlog::register_logger(created);
    } catch (const spdlog::spdlog_ex&) {
      // Another thread or layer registered "state" first; use that one.
      if (auto existing = spdlog::get(kName)) return existing;
    }
    return created;
  }();
  return *logger;
}

}  // namespace tributary::internal
