// tributary-reset's reading of its flags' values (label unit): Kafka's
// --to-datetime and --by-duration formats, and which topics are an
// application's internal ones. The reset itself is in
// tributary_reset_kafka_test (real broker).
#include "apps/tributary-reset/reset.h"

#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tributary::reset {
namespace {

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

TEST(ParseDateTime, ReadsKafkasFormatsWithoutAZoneAsUtc) {
  EXPECT_EQ(*ParseDateTime("2024-03-01T10:20:30"), Utc(2024, 3, 1, 10, 20, 30));
  EXPECT_EQ(*ParseDateTime("2024-03-01T10:20:30.250"),
            Utc(2024, 3, 1, 10, 20, 30) + absl::Milliseconds(250));
  EXPECT_EQ(*ParseDateTime("2024-03-01T10:20:30Z"), Utc(2024, 3, 1, 10, 20, 30));
  EXPECT_EQ(*ParseDateTime("2024-03-01T10:20:30.5Z"),
            Utc(2024, 3, 1, 10, 20, 30) + absl::Milliseconds(500));
  EXPECT_EQ(*ParseDateTime("2024-03-01T12:20:30+02:00"), Utc(2024, 3, 1, 10, 20, 30));
  EXPECT_EQ(*ParseDateTime("2024-03-01T05:50:30.000-04:30"), Utc(2024, 3, 1, 10, 20, 30));
  EXPECT_EQ(*ParseDateTime("2024-03-01T12:20:30+0200"), Utc(2024, 3, 1, 10, 20, 30));
  EXPECT_EQ(*ParseDateTime("2024-03-01T12:20:30+02"), Utc(2024, 3, 1, 10, 20, 30));
}

TEST(ParseDateTime, RefusesWhatIsNotADateTime) {
  for (const char* bad : {"", "2024-03-01", "2024-03-01 10:20:30", "2024-13-01T00:00:00",
                          "2024-02-30T00:00:00", "2024-03-01T25:00:00", "2024-03-01T10:20:30+2",
                          "2024-03-01T10:20:30+24:00", "2024-03-01T10:20:30 UTC", "yesterday"}) {
    EXPECT_FALSE(ParseDateTime(bad).ok()) << bad;
  }
}

TEST(ParseIsoDuration, ReadsJavaDurationParseFormat) {
  EXPECT_EQ(*ParseIsoDuration("PT1H"), absl::Hours(1));
  EXPECT_EQ(*ParseIsoDuration("PT30M"), absl::Minutes(30));
  EXPECT_EQ(*ParseIsoDuration("PT45S"), absl::Seconds(45));
  EXPECT_EQ(*ParseIsoDuration("PT0.5S"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseIsoDuration("P2D"), absl::Hours(48));
  EXPECT_EQ(*ParseIsoDuration("P1DT12H30M15.25S"),
            absl::Hours(36) + absl::Minutes(30) + absl::Seconds(15) + absl::Milliseconds(250));
  EXPECT_EQ(*ParseIsoDuration("pt2h"), absl::Hours(2));
  EXPECT_EQ(*ParseIsoDuration("-PT6H"), -absl::Hours(6));
  EXPECT_EQ(*ParseIsoDuration("PT-6H30M"), -absl::Hours(6) + absl::Minutes(30));
}

TEST(ParseIsoDuration, RefusesWhatIsNotAnIsoDuration) {
  for (const char* bad : {"", "P", "PT", "P1DT", "1h", "PT1", "PT1.5H", "P1H", "PT1S2M", "P1Y",
                          "PT1HX", "T1H"}) {
    EXPECT_FALSE(ParseIsoDuration(bad).ok()) << bad;
  }
}

TEST(IsInternalTopic, PrefixedRepartitionAndChangelogTopicsThatAreNotInputs) {
  const std::vector<std::string> inputs = {"app-input-changelog"};
  EXPECT_TRUE(IsInternalTopic("app", "app-orders-aggregate-repartition", inputs));
  EXPECT_TRUE(IsInternalTopic("app", "app-orders-tx-repartition", inputs));
  EXPECT_TRUE(IsInternalTopic("app", "app-orders-roots-changelog", inputs));
  EXPECT_FALSE(IsInternalTopic("app", "app-input-changelog", inputs));  // an input topic
  EXPECT_FALSE(IsInternalTopic("app", "app-dlq", inputs));              // an output topic
  EXPECT_TRUE(IsInternalTopic("app", "app-control", inputs));  // the shutdown channel
  EXPECT_FALSE(IsInternalTopic("app", "app-orders-control", inputs));
  EXPECT_FALSE(IsInternalTopic("app", "other-counts-changelog", inputs));
  EXPECT_FALSE(IsInternalTopic("app", "app-repartition", inputs));  // no name between
  EXPECT_FALSE(IsInternalTopic("app", "apps-counts-changelog", inputs));
  EXPECT_FALSE(IsInternalTopic("app", "app-counts-changelog-old", inputs));
}

TEST(DescribeTarget, SaysWhereTheOffsetsGo) {
  EXPECT_EQ(DescribeTarget(ToEarliest{}), "to earliest");
  EXPECT_EQ(DescribeTarget(ToLatest{}), "to latest");
  EXPECT_EQ(DescribeTarget(ToOffset{42}), "to offset 42");
  EXPECT_EQ(DescribeTarget(ToTime{Utc(2024, 3, 1, 10, 20, 30) + absl::Milliseconds(7)}),
            "to 2024-03-01T10:20:30.007Z");
}

}  // namespace
}  // namespace tributary::reset
