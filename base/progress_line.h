// ProgressLine: one progress line that a command-line tool (cdc-gen,
// tributary-reset, the benchmarks) redraws in place on a terminal --
// "\r<label>: <done>/<total> <unit> (<pct>%), <rate> <rate unit>/s, <elapsed> s"
// -- at most once per interval, and that prints nothing at all when the
// stream is not a terminal, so that logs and pipes stay clean.
// Thread-safety: one thread, the one that counts.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"

namespace tributary {

class ProgressLine {
 public:
  using Clock = absl::AnyInvocable<std::chrono::steady_clock::time_point()>;
  // Gets each piece of text to print (a redraw starts with '\r').
  using Writer = absl::AnyInvocable<void(std::string_view)>;

  struct Options {
    std::string label;               // e.g. "cdc-gen"
    int64_t total = 0;               // 0: unknown (no "/total", no percentage)
    std::string unit = "events";     // what `done` counts
    std::string rate_unit;           // what the rate counts; empty: `unit`
    std::chrono::milliseconds interval{250};  // between redraws, at least
  };

  // On stderr when stderr is a terminal (isatty); otherwise a line that
  // prints nothing. `total` 0: unknown.
  static ProgressLine OnStderr(std::string label, int64_t total, std::string unit = "events",
                               std::string rate_unit = "");
  // `enabled` false: prints nothing. `clock` null: the steady clock.
  ProgressLine(Options options, bool enabled, Writer writer, Clock clock = nullptr);
  ProgressLine(const ProgressLine&) = delete;  // OnStderr's result is elided
  ProgressLine& operator=(const ProgressLine&) = delete;
  // Finish().
  ~ProgressLine();

  bool enabled() const { return enabled_; }
  // `done` so far and, for a rate of something else (rate_unit), its count;
  // redraws when `interval` has passed since the last redraw (or the start).
  void Update(int64_t done, int64_t rated);
  void Update(int64_t done) { Update(done, done); }
  // Draws the last values and ends the line with '\n', if it drew anything.
  // Idempotent; nothing more is drawn after it.
  void Finish();

 private:
  void Draw(std::chrono::steady_clock::time_point now);

  Options options_;
  bool enabled_;
  Writer writer_;
  Clock clock_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
  bool finished_ = false;
  int64_t done_ = 0;
  int64_t rated_ = 0;
  size_t last_length_ = 0;  // of the last line drawn, to blank what is left of it
};

}  // namespace tributary
