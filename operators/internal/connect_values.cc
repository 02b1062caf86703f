#include "operators/internal/connect_values.h"

#include <charconv>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tributary::internal {
namespace {

constexpr int32_t kMaxScale = 100000;
constexpr uint32_t kLimbBase = 1000000000;  // 10^9

void AppendUnsigned(uint64_t n, std::string* out) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof(digits), n);
  out->append(digits, result.ptr);
}

// Appends n as exactly `width` digits (leading zeros).
void AppendPadded(uint64_t n, int width, std::string* out) {
  const size_t end = out->size() + static_cast<size_t>(width);
  out->resize(end);
  for (size_t i = end; i-- > end - static_cast<size_t>(width);) {
    (*out)[i] = static_cast<char>('0' + n % 10);
    n /= 10;
  }
}

// The magnitude of a big-endian two's-complement integer as decimal digits
// (no leading zeros; "0" for zero). Sets *negative.
std::string MagnitudeDigits(std::string_view bytes, bool* negative) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  *negative = (data[0] & 0x80) != 0;
  std::string digits;
  if (bytes.size() <= 8) {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) value = (value << 8) | data[i];
    if (*negative) {
      // Sign-extend to 64 bits, then negate as unsigned (exact for INT64_MIN).
      if (bytes.size() < 8) value |= ~uint64_t{0} << (8 * bytes.size());
      value = ~value + 1;
    }
    AppendUnsigned(value, &digits);
    return digits;
  }
  // Any length: negate in place when negative, then convert base 256 to base
  // 10^9 limbs (little-endian) by Horner's rule.
  std::vector<uint8_t> magnitude(data, data + bytes.size());
  if (*negative) {
    for (uint8_t& b : magnitude) b = static_cast<uint8_t>(~b);
    for (size_t i = magnitude.size(); i-- > 0;) {
      if (++magnitude[i] != 0) break;
    }
  }
  std::vector<uint32_t> limbs;
  limbs.reserve(bytes.size() / 3 + 1);
  for (uint8_t byte : magnitude) {
    uint64_t carry = byte;
    for (uint32_t& limb : limbs) {
      const uint64_t v = uint64_t{limb} * 256 + carry;
      limb = static_cast<uint32_t>(v % kLimbBase);
      carry = v / kLimbBase;
    }
    while (carry != 0) {
      limbs.push_back(static_cast<uint32_t>(carry % kLimbBase));
      carry /= kLimbBase;
    }
  }
  if (limbs.empty()) return "0";
  AppendUnsigned(limbs.back(), &digits);
  for (size_t i = limbs.size() - 1; i-- > 0;) {
    AppendPadded(limbs[i], 9, &digits);
  }
  return digits;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int FractionDigits(int64_t units_per_second) {
  int digits = 0;
  for (int64_t u = units_per_second; u > 1; u /= 10) ++digits;
  return digits;
}

// Appends hours:minutes:seconds[.fraction] of `value` (>= 0) units.
void AppendClock(int64_t value, int64_t units_per_second, std::string* out) {
  const int64_t seconds = value / units_per_second;
  int64_t fraction = value % units_per_second;
  AppendPadded(static_cast<uint64_t>(seconds / 3600), 2, out);
  out->push_back(':');
  AppendPadded(static_cast<uint64_t>(seconds / 60 % 60), 2, out);
  out->push_back(':');
  AppendPadded(static_cast<uint64_t>(seconds % 60), 2, out);
  if (fraction == 0) return;
  int width = FractionDigits(units_per_second);
  while (fraction % 10 == 0) {
    fraction /= 10;
    --width;
  }
  out->push_back('.');
  AppendPadded(static_cast<uint64_t>(fraction), width, out);
}

}  // namespace

absl::Status AppendDecimal(std::string_view unscaled, int32_t scale,
                           std::string* out) {
  if (unscaled.empty()) {
    return absl::InvalidArgumentError("decimal with no unscaled bytes");
  }
  if (scale > kMaxScale || scale < -kMaxScale) {
    return absl::InvalidArgumentError(
        absl::StrCat("decimal scale ", scale, " out of range"));
  }
  bool negative = false;
  const std::string digits = MagnitudeDigits(unscaled, &negative);
  const bool zero = digits == "0";
  if (negative && !zero) out->push_back('-');
  if (scale <= 0) {
    out->append(digits);
    if (!zero) out->append(static_cast<size_t>(-scale), '0');
    return absl::OkStatus();
  }
  const size_t s = static_cast<size_t>(scale);
  if (digits.size() <= s) {
    out->append("0.");
    out->append(s - digits.size(), '0');
    out->append(digits);
  } else {
    out->append(digits, 0, digits.size() - s);
    out->push_back('.');
    out->append(digits, digits.size() - s, s);
  }
  return absl::OkStatus();
}

void AppendDate(int64_t days, std::string* out) {
  // Howard Hinnant's civil_from_days: day of era in [0, 146096], year of
  // era in [0, 399], day of year (from March) in [0, 365].
  const int64_t z = days + 719468;
  const int64_t era = FloorDiv(z, 146097);
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const uint64_t abs_year = static_cast<uint64_t>(year < 0 ? -year : year);
  if (year < 0) {
    out->push_back('-');
  } else if (year > 9999) {
    out->push_back('+');
  }
  if (abs_year <= 9999) {
    AppendPadded(abs_year, 4, out);
  } else {
    AppendUnsigned(abs_year, out);
  }
  out->push_back('-');
  AppendPadded(static_cast<uint64_t>(month), 2, out);
  out->push_back('-');
  AppendPadded(static_cast<uint64_t>(day), 2, out);
}

absl::Status AppendTimeOfDay(int64_t value, int64_t units_per_second,
                             std::string* out) {
  const int64_t day = 86400 * units_per_second;
  if (value < 0 || value > day) {
    return absl::InvalidArgumentError(
        absl::StrCat("time of day ", value, " out of range [0, ", day, "]"));
  }
  AppendClock(value, units_per_second, out);
  return absl::OkStatus();
}

void AppendTimestamp(int64_t value, int64_t units_per_second,
                     std::string* out) {
  const int64_t units_per_day = 86400 * units_per_second;
  // Floor division without forming days * units_per_day, which overflows
  // for the earliest nanosecond timestamps.
  int64_t days = value / units_per_day;
  int64_t rest = value % units_per_day;
  if (rest < 0) {
    rest += units_per_day;
    --days;
  }
  AppendDate(days, out);
  out->push_back('T');
  AppendClock(rest, units_per_second, out);
  out->push_back('Z');
}

}  // namespace tributary::internal
