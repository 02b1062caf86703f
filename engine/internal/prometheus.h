// The Prometheus text exposition format (version 0.0.4) of metric samples,
// as GET /metrics serves it. Pure functions; callable from any thread.
//
// Names: "tributary_" + the metric's name with every character outside
// [a-zA-Z0-9_] made '_' ("process-total" -> tributary_process_total);
// counters end in "_total". A latency is a summary in seconds
// (<name>_seconds{quantile="0.5"|"0.99"}, _seconds_sum, _seconds_count) and
// a gauge <name>_max_seconds. Tags become labels, values escaped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/metrics.h"

namespace tributary::internal {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// The exposition of `samples` (any order; grouped by name here).
std::string PrometheusText(std::vector<MetricSample> samples);

// The exposed name of a metric (without the _seconds / _total suffixes of
// the kinds: see above), e.g. "tributary_commit_latency".
std::string PrometheusBaseName(std::string_view name);

// `value` escaped for a label value: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

// The HELP text of a metric the engine emits, or a generic one.
std::string MetricHelp(std::string_view name);

}  // namespace tributary::internal
