// Text forms of Kafka Connect / Debezium logical-type values: exact decimals
// from big-endian two's-complement bytes, ISO-8601 dates, times of day and
// UTC timestamps from epoch counts. Integer arithmetic only.
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tributary::internal {

// Appends unscaled * 10^-scale, where `unscaled` is a big-endian two's-
// complement integer of any length, as plain decimal text (Java's
// BigDecimal.toPlainString): "12.50", "-0.05", "0", "0.00", "1200" (scale -2).
// Errors: InvalidArgument for empty bytes or |scale| > 100000.
absl::Status AppendDecimal(std::string_view unscaled, int32_t scale,
                           std::string* out);

// Appends the proleptic Gregorian date `days` after 1970-01-01 (negative:
// before) as "YYYY-MM-DD"; years beyond 9999 as "+10000-...", before year 0
// as "-0001-...", as java.time does.
// REQUIRES: |days| < 2^40.
void AppendDate(int64_t days, std::string* out);

// Appends a time of day given in units of 1/`units_per_second` s as
// "HH:MM:SS" plus, when not zero, a fraction without trailing zeros
// (".5", ".123", ".123456"), as Debezium's own ISO strings (ZonedTime,
// ZonedTimestamp) are written. 24:00:00 (PostgreSQL allows it) stays 24:00:00.
// REQUIRES: units_per_second is 1000, 1000000 or 1000000000.
// Errors: InvalidArgument for a negative value or one of 24 h or more (but
// 24:00:00 exactly).
absl::Status AppendTimeOfDay(int64_t value, int64_t units_per_second,
                             std::string* out);

// Appends an instant given in units of 1/`units_per_second` s since the
// epoch (negative: before) as ISO-8601 UTC "YYYY-MM-DDTHH:MM:SS[.f]Z".
// REQUIRES: units_per_second is 1000, 1000000 or 1000000000.
void AppendTimestamp(int64_t value, int64_t units_per_second, std::string* out);

}  // namespace tributary::internal
