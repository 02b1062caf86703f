// The operators' binary helpers: the one ordered 64-bit integer encoding
// (byte order equals numeric order, negatives included), varints, strings.
#include "operators/internal/codec.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tributary::internal {
namespace {

TEST(OrderedInt64Test, ByteOrderIsNumericOrderIncludingNegatives) {
  const std::vector<int64_t> values = {std::numeric_limits<int64_t>::min(),
                                       -1'000'000'000'000,
                                       -256,
                                       -255,
                                       -2,
                                       -1,
                                       0,
                                       1,
                                       255,
                                       256,
                                       1'000'000'000'000,
                                       std::numeric_limits<int64_t>::max()};
  std::vector<std::string> encoded;
  for (int64_t v : values) {
    std::string bytes;
    PutOrderedInt64(bytes, v);
    ASSERT_EQ(bytes.size(), 8u);
    EXPECT_EQ(GetOrderedInt64(bytes), v);
    encoded.push_back(bytes);
  }
  // Shuffled, then sorted as bytes (unsigned, as the stores order keys).
  std::vector<std::string> sorted(encoded.rbegin(), encoded.rend());
  std::rotate(sorted.begin(), sorted.begin() + 5, sorted.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, encoded);
}

TEST(CodecReaderTest, ReadsWhatThePutFunctionsWrote) {
  std::string out;
  PutVarint(out, 300);
  PutBytes(out, "abc");
  PutOrderedInt64(out, -42);
  PutOptional(out, std::nullopt);
  Reader reader(out);
  uint64_t n = 0;
  std::string_view bytes;
  int64_t v = 0;
  std::optional<std::string_view> optional = "x";
  ASSERT_TRUE(reader.Varint(n));
  EXPECT_EQ(n, 300u);
  ASSERT_TRUE(reader.Bytes(bytes));
  EXPECT_EQ(bytes, "abc");
  ASSERT_TRUE(reader.OrderedInt64(v));
  EXPECT_EQ(v, -42);
  ASSERT_TRUE(reader.Optional(optional));
  EXPECT_FALSE(optional.has_value());
  EXPECT_TRUE(reader.done());
}

}  // namespace
}  // namespace tributary::internal
