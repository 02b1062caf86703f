#include "engine/serde.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "engine/json_document.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;

template <typename T>
std::string Bytes(const Serde<T>& serde, const T& value) {
  std::string out = "garbage that serialize must replace";
  serde.serialize(value, out);
  return out;
}

template <typename T>
T RoundTrip(const Serde<T>& serde, const T& value) {
  absl::StatusOr<T> back = serde.deserialize(Bytes(serde, value));
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : T{};
}

TEST(SerdeTest, StringAndBytesAreTheBytes) {
  const std::string binary("a\0b\xff", 4);
  EXPECT_EQ(Bytes(Serdes::String(), std::string("héllo")), "héllo");
  EXPECT_EQ(RoundTrip(Serdes::String(), std::string("héllo")), "héllo");
  EXPECT_EQ(RoundTrip(Serdes::String(), std::string()), "");
  EXPECT_EQ(Bytes(Serdes::Bytes(), binary), binary);
  EXPECT_EQ(RoundTrip(Serdes::Bytes(), binary), binary);
  EXPECT_EQ(Serdes::String().name, "String");
  EXPECT_EQ(Serdes::Bytes().name, "Bytes");
}

TEST(SerdeTest, Int64IsBigEndianLikeKafkasLongSerializer) {
  const Serde<int64_t> serde = Serdes::Int64();
  EXPECT_EQ(Bytes<int64_t>(serde, 1), std::string("\0\0\0\0\0\0\0\x01", 8));
  EXPECT_EQ(Bytes<int64_t>(serde, 0x0102030405060708),
            std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(Bytes<int64_t>(serde, -1), std::string(8, '\xff'));
  EXPECT_EQ(Bytes<int64_t>(serde, std::numeric_limits<int64_t>::min()),
            std::string("\x80\0\0\0\0\0\0\0", 8));
  for (int64_t v : {int64_t{0}, int64_t{42}, int64_t{-42},
                    std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()}) {
    EXPECT_EQ(RoundTrip(serde, v), v);
  }
}

TEST(SerdeTest, Int32IsBigEndian) {
  const Serde<int32_t> serde = Serdes::Int32();
  EXPECT_EQ(Bytes<int32_t>(serde, 0x01020304),
            std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(Bytes<int32_t>(serde, -2), std::string("\xff\xff\xff\xfe", 4));
  for (int32_t v : {0, 7, -7, std::numeric_limits<int32_t>::max(),
                    std::numeric_limits<int32_t>::min()}) {
    EXPECT_EQ(RoundTrip(serde, v), v);
  }
}

TEST(SerdeTest, DoubleIsIeeeBitsBigEndian) {
  const Serde<double> serde = Serdes::Double();
  // 1.0 is 0x3FF0000000000000.
  EXPECT_EQ(Bytes(serde, 1.0), std::string("\x3f\xf0\0\0\0\0\0\0", 8));
  for (double v :
       {0.0, -0.0, 3.25, -1e300, std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::denorm_min()}) {
    const double back = RoundTrip(serde, v);
    EXPECT_EQ(back, v);
    EXPECT_EQ(std::signbit(back), std::signbit(v));
  }
  EXPECT_TRUE(
      std::isnan(RoundTrip(serde, std::numeric_limits<double>::quiet_NaN())));
}

TEST(SerdeTest, FixedWidthErrorsSayWhatWasWrong) {
  absl::StatusOr<int64_t> l = Serdes::Int64().deserialize("abc");
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(l.status().message(), "Int64 serde: expected 8 bytes, got 3");
  EXPECT_EQ(Serdes::Int32().deserialize("").status().message(),
            "Int32 serde: expected 4 bytes, got 0");
  EXPECT_EQ(Serdes::Double().deserialize("123456789").status().message(),
            "Double serde: expected 8 bytes, got 9");
}

TEST(SerdeTest, JsonRoundTripAndFields) {
  const Serde<JsonDocument> serde = Serdes::Json();
  const std::string text =
      R"({"id": 7, "name": "caf\u00e9", "tags": [1, 2.5, null, true]})";
  absl::StatusOr<JsonDocument> doc = serde.deserialize(text);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->text(), text);
  EXPECT_EQ(Bytes(serde, *doc), text);

  simdjson::ondemand::document json;
  ASSERT_EQ(doc->Document().get(json), simdjson::SUCCESS);
  int64_t id = 0;
  ASSERT_EQ(json["id"].get_int64().get(id), simdjson::SUCCESS);
  EXPECT_EQ(id, 7);
  std::string_view name;
  ASSERT_EQ(json["name"].get_string().get(name), simdjson::SUCCESS);
  EXPECT_EQ(name, "café");

  // A copy reads independently; Document() again starts from the beginning.
  const JsonDocument copy = *doc;
  EXPECT_EQ(copy, *doc);
  simdjson::ondemand::document again;
  ASSERT_EQ(copy.Document().get(again), simdjson::SUCCESS);
  ASSERT_EQ(again["id"].get_int64().get(id), simdjson::SUCCESS);
  EXPECT_EQ(id, 7);
}

TEST(SerdeTest, JsonAcceptsScalarDocuments) {
  for (const char* text :
       {"42", "-1.5e3", "\"s\"", "true", "false", "null", " [ ] ", "{}"}) {
    EXPECT_TRUE(Serdes::Json().deserialize(text).ok()) << text;
  }
}

TEST(SerdeTest, JsonRejectsInvalidText) {
  for (const char* text :
       {"", "{", "{\"a\":}", "{\"a\": 1} x", "[1, 2", "tru", "nul", "1.2.3",
        "\"\\x\"", "{\"a\" 1}", "[1,]", "{\"a\": [1, {\"b\": nope}]}", "01"}) {
    absl::StatusOr<JsonDocument> doc = Serdes::Json().deserialize(text);
    EXPECT_FALSE(doc.ok()) << "accepted: " << text;
    EXPECT_THAT(std::string(doc.status().message()),
                HasSubstr("Json serde: invalid JSON"))
        << text;
  }
  EXPECT_THAT(
      std::string(
          Serdes::Json().deserialize("{\"a\": 1} x").status().message()),
      HasSubstr("(10 bytes)"));
}

TEST(SerdeTest, EmptyJsonDocumentHasNoDocument) {
  const JsonDocument empty;
  EXPECT_TRUE(empty.empty());
  simdjson::ondemand::document json;
  EXPECT_EQ(empty.Document().get(json), simdjson::EMPTY);
}

TEST(SerdeTest, OptionalWrapsTheInnerSerde) {
  const Serde<std::optional<int64_t>> serde = Serdes::Optional(Serdes::Int64());
  EXPECT_EQ(serde.name, "Optional<Int64>");
  EXPECT_EQ(RoundTrip(serde, std::optional<int64_t>(5)),
            std::optional<int64_t>(5));
  EXPECT_EQ(serde.deserialize("x").status().message(),
            "Int64 serde: expected 8 bytes, got 1");
}

struct Point {
  int x = 0;
};

TEST(SerdeTest, DefaultPicksTheBuiltInSerdes) {
  EXPECT_EQ(Serdes::Default<std::string>().name, "String");
  EXPECT_EQ(Serdes::Default<int64_t>().name, "Int64");
  EXPECT_EQ(Serdes::Default<int32_t>().name, "Int32");
  EXPECT_EQ(Serdes::Default<double>().name, "Double");
  EXPECT_EQ(Serdes::Default<JsonDocument>().name, "Json");
  EXPECT_EQ(Serdes::Default<std::optional<std::string>>().name,
            "Optional<String>");
  EXPECT_FALSE(Serdes::Default<Point>().valid());
  EXPECT_FALSE(Serdes::Default<std::optional<Point>>().valid());
}

}  // namespace
}  // namespace tributary
