// The state layer's spdlog logger, named "state". Internal to state/.
// Thread-safety: StateLog() may be called from any thread; spdlog loggers are
// thread-safe.
#pragma once

#include "spdlog/logger.h"

namespace tributary::internal {

// Returns the "state" logger, creating it on first use with the sinks of the
// default logger (so an application's sink setup applies), or reusing a
// logger of that name that the application registered first.
spdlog::logger& StateLog();

}  // namespace tributary::internal
