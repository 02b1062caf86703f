#include "base/progress_line.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_format.h"

namespace tributary {
namespace {

std::chrono::steady_clock::time_point SteadyNow() { return std::chrono::steady_clock::now(); }

// 1234567 -> "1,234,567".
std::string Grouped(int64_t n) {
  std::string digits = absl::StrFormat("%d", n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace

ProgressLine ProgressLine::OnStderr(std::string label, int64_t total, std::string unit,
                                    std::string rate_unit) {
  Options options;
  options.label = std::move(label);
  options.total = total;
  options.unit = std::move(unit);
  options.rate_unit = std::move(rate_unit);
  return ProgressLine(std::move(options), isatty(STDERR_FILENO) == 1,
                      [](std::string_view text) {
                        std::fwrite(text.data(), 1, text.size(), stderr);
                        std::fflush(stderr);
                      });
}

ProgressLine::ProgressLine(Options options, bool enabled, Writer writer, Clock clock)
    : options_(std::move(options)),
      enabled_(enabled),
      writer_(std::move(writer)),
      clock_(clock ? std::move(clock) : Clock(&SteadyNow)) {
  if (options_.rate_unit.empty()) options_.rate_unit = options_.unit;
  start_ = clock_();
}

ProgressLine::~ProgressLine() { Finish(); }

void ProgressLine::Update(int64_t done, int64_t rated) {
  done_ = done;
  rated_ = rated;
  if (!enabled_ || finished_) return;
  const auto now = clock_();
  // The first draw waits an interval too: a quick job shows no line at all,
  // and the first rate is not over a few microseconds.
  if (now - (drawn_ ? last_draw_ : start_) < options_.interval) return;
  Draw(now);
}

void ProgressLine::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_ || !drawn_) return;
  Draw(clock_());
  writer_("\n");
}

void ProgressLine::Draw(std::chrono::steady_clock::time_point now) {
  const double seconds = std::chrono::duration<double>(now - start_).count();
  std::string line = absl::StrFormat("%s: %s", options_.label, Grouped(done_));
  if (options_.total > 0) {
    absl::StrAppendFormat(&line, "/%s %s (%d%%)", Grouped(options_.total), options_.unit,
                          static_cast<int>(100.0 * static_cast<double>(done_) /
                                           static_cast<double>(options_.total)));
  } else {
    absl::StrAppendFormat(&line, " %s", options_.unit);
  }
  const int64_t rate =
      seconds > 0 ? static_cast<int64_t>(static_cast<double>(rated_) / seconds) : 0;
  absl::StrAppendFormat(&line, ", %s %s/s, %.1f s", Grouped(rate), options_.rate_unit, seconds);
  const size_t length = line.size();
  if (length < last_length_) line.append(last_length_ - length, ' ');
  last_length_ = length;
  writer_("\r" + line);
  drawn_ = true;
  last_draw_ = now;
}

}  // namespace tributary
