// AssembledRoots (operators/internal/assembled_roots.h): writes applied to a
// cached root, the byte budget, least recently used eviction. Its use by
// AggregateJoin is tested through the topology in
// transaction_aggregate_test.cc (AssembledRootsTest).
#include "operators/internal/assembled_roots.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace tributary::internal {
namespace {

using Children = AssembledRoots::Children;

// `n` rows of table 1 of `bytes` each (child keys 1..n, one byte each).
Children Rows(int n, size_t bytes) {
  Children children;
  for (int i = 1; i <= n; ++i) {
    children.emplace(std::string{'\1', static_cast<char>(i)}, std::string(bytes, 'x'));
  }
  return children;
}

TEST(AssembledRootsTest, WritesOfTheRootApplyToItsEntryOnly) {
  AssembledRoots roots(1 << 20);
  roots.Insert("1", Rows(2, 10));
  WriteBatch writes;
  writes.Put(std::string("1\0\1\3", 4), "new");
  writes.Put(std::string("1\0\1\1", 4), "changed");
  writes.Delete(std::string("1\0\1\2", 4));
  writes.Delete(std::string("1\0\1\7", 4));  // not there: nothing
  roots.Apply("1", std::string("1\0", 2), writes);
  roots.Apply("2", std::string("2\0", 2), writes);  // not cached: nothing
  const Children* one = roots.Find("1");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(*one, (Children{{std::string("\1\1", 2), "changed"}, {std::string("\1\3", 2), "new"}}));
  EXPECT_EQ(roots.Find("2"), nullptr);
  roots.Erase("1");
  EXPECT_EQ(roots.Find("1"), nullptr);
  EXPECT_EQ(roots.bytes(), 0u);
}

TEST(AssembledRootsTest, LeastRecentlyUsedGoFirstAndNothingLargerThanTheBudgetStays) {
  AssembledRoots roots(3000);
  roots.Insert("1", Rows(4, 100));  // ~800 bytes each
  roots.Insert("2", Rows(4, 100));
  roots.Insert("3", Rows(4, 100));
  ASSERT_NE(roots.Find("1"), nullptr);  // 2 is now the least recently used
  roots.Insert("4", Rows(4, 100));
  EXPECT_EQ(roots.Find("2"), nullptr);
  EXPECT_NE(roots.Find("1"), nullptr);
  EXPECT_NE(roots.Find("3"), nullptr);
  EXPECT_NE(roots.Find("4"), nullptr);
  EXPECT_LE(roots.bytes(), 3000u);

  roots.Insert("5", Rows(40, 100));  // over the whole budget
  EXPECT_EQ(roots.Find("5"), nullptr);
  EXPECT_NE(roots.Find("4"), nullptr) << "nothing evicted for it";

  // A root that grows past the budget leaves.
  WriteBatch growth;
  for (int i = 10; i < 40; ++i) {
    growth.Put(std::string("4\0\1", 3) + static_cast<char>(i), std::string(100, 'y'));
  }
  roots.Apply("4", std::string("4\0", 2), growth);
  EXPECT_EQ(roots.Find("4"), nullptr);
  EXPECT_LE(roots.bytes(), 3000u);
  roots.Clear();
  EXPECT_EQ(roots.bytes(), 0u);
}

TEST(AssembledRootsTest, ABudgetOfZeroKeepsNothing) {
  AssembledRoots roots(0);
  EXPECT_FALSE(roots.enabled());
  roots.Insert("1", Rows(1, 1));
  EXPECT_EQ(roots.Find("1"), nullptr);
  EXPECT_EQ(roots.bytes(), 0u);
}

}  // namespace
}  // namespace tributary::internal
