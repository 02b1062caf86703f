#include "base/progress_line.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace tributary {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

// A clock the test moves and a stream that keeps what was written.
ProgressLine::Options MakeOptions(std::string label, int64_t total = 0,
                                  std::string unit = "events", std::string rate_unit = "",
                                  std::chrono::milliseconds interval = 250ms) {
  ProgressLine::Options options;
  options.label = std::move(label);
  options.total = total;
  options.unit = std::move(unit);
  options.rate_unit = std::move(rate_unit);
  options.interval = interval;
  return options;
}

struct Fakes {
  std::chrono::steady_clock::time_point now{};  // epoch
  std::vector<std::string> writes;

  ProgressLine Line(ProgressLine::Options options, bool enabled = true) {
    return ProgressLine(
        std::move(options), enabled, [this](std::string_view text) { writes.emplace_back(text); },
        [this] { return now; });
  }
};

TEST(ProgressLineTest, RedrawsAtMostOncePerIntervalAndEndsTheLine) {
  Fakes fakes;
  ProgressLine line = fakes.Line(MakeOptions("cdc-gen", 10000, "transactions", "events", 250ms));
  fakes.now += 1s;
  line.Update(1000, 5000);  // the first update draws
  fakes.now += 100ms;
  line.Update(1100, 5500);  // within the interval: nothing
  fakes.now += 100ms;
  line.Update(1200, 6000);  // still within
  fakes.now += 800ms;
  line.Update(2000, 12000);  // 2 s
  line.Finish();
  line.Finish();  // idempotent
  line.Update(3000, 13000);  // after Finish: nothing
  EXPECT_THAT(fakes.writes,
              ElementsAre("\rcdc-gen: 1,000/10,000 transactions (10%), 5,000 events/s, 1.0 s",
                          "\rcdc-gen: 2,000/10,000 transactions (20%), 6,000 events/s, 2.0 s",
                          "\rcdc-gen: 2,000/10,000 transactions (20%), 6,000 events/s, 2.0 s",
                          "\n"));
}

TEST(ProgressLineTest, WithoutATotalAndBlanksWhatALongerLineLeft) {
  Fakes fakes;
  ProgressLine line = fakes.Line(MakeOptions("bench", 0, "events", "", 1s));
  fakes.now += 2s;
  line.Update(2'000'000);
  fakes.now += 8s;
  line.Update(3);
  EXPECT_THAT(fakes.writes, ElementsAre("\rbench: 2,000,000 events, 1,000,000 events/s, 2.0 s",
                                        "\rbench: 3 events, 0 events/s, 10.0 s               "));
}

TEST(ProgressLineTest, DisabledPrintsNothingAtAll) {
  Fakes fakes;
  {
    ProgressLine line = fakes.Line(MakeOptions("tributary-reset", 4), /*enabled=*/false);
    EXPECT_FALSE(line.enabled());
    for (int i = 1; i <= 4; ++i) {
      fakes.now += 1s;
      line.Update(i);
    }
  }  // the destructor finishes the line
  EXPECT_TRUE(fakes.writes.empty());
}

TEST(ProgressLineTest, AJobShorterThanAnIntervalShowsNoLine) {
  Fakes fakes;
  {
    ProgressLine line = fakes.Line(MakeOptions("x", 9, "partitions"));
    fakes.now += 20ms;
    line.Update(1);
    fakes.now += 20ms;
    line.Update(9);
  }  // the destructor finishes the line
  EXPECT_TRUE(fakes.writes.empty()) << "nothing drawn: no line to end";
}

TEST(ProgressLineTest, OnStderrIsDisabledWhenStderrIsNoTerminal) {
  // ctest runs tests with stderr on a pipe or file, never a terminal.
  if (isatty(STDERR_FILENO) == 1) GTEST_SKIP() << "stderr is a terminal here";
  ProgressLine line = ProgressLine::OnStderr("x", 0);
  EXPECT_FALSE(line.enabled());
}

}  // namespace
}  // namespace tributary
