// RetainedIds, the bounded seen-id set of the transaction assembler (ordered
// by END position) and the outbox router (ordered by a local sequence).
#include "operators/internal/retained_ids.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "state/in_memory_store.h"

namespace tributary::internal {
namespace {

std::optional<std::string> Held(const RetainedIds& ids, KeyValueStore& store,
                                std::string_view id) {
  absl::StatusOr<std::optional<std::string>> value = ids.Get(store, id);
  EXPECT_TRUE(value.ok()) << value.status();
  return value.ok() ? *value : std::nullopt;
}

TEST(RetainedIdsTest, KeepsTheHighestOrdersAndLeavesOtherKeysAlone) {
  std::unique_ptr<KeyValueStore> store = InMemoryStore::Create("meta");
  ASSERT_TRUE(store->Put("Qother", "x").ok());  // the next prefix after 'P'
  RetainedIds ids('R', 'P', /*retention=*/2);
  ASSERT_TRUE(ids.Load(*store).ok());
  EXPECT_EQ(ids.max_order(), -1);
  // Sparse orders, one of them lower than an earlier one.
  for (auto [id, order] : {std::pair{"a", 10}, {"b", 30}, {"c", 20}, {"d", 40}}) {
    WriteBatch batch;
    ids.Add(batch, id, order, absl::StrCat("v", order));
    ASSERT_TRUE(store->Write(batch).ok());
    ASSERT_TRUE(ids.Prune(*store).ok());
  }
  EXPECT_EQ(ids.size(), 2);
  EXPECT_EQ(ids.max_order(), 40);
  EXPECT_FALSE(Held(ids, *store, "a"));
  EXPECT_FALSE(Held(ids, *store, "c"));
  EXPECT_EQ(Held(ids, *store, "b"), "v30");
  EXPECT_EQ(Held(ids, *store, "d"), "v40");
  absl::StatusOr<std::optional<std::string>> other = store->Get("Qother");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, "x");

  // A task reopening the store sees the same window.
  RetainedIds reopened('R', 'P', /*retention=*/2);
  ASSERT_TRUE(reopened.Load(*store).ok());
  EXPECT_EQ(reopened.size(), 2);
  EXPECT_EQ(reopened.max_order(), 40);
  WriteBatch batch;
  reopened.Add(batch, "e", 50, "v50");
  ASSERT_TRUE(store->Write(batch).ok());
  ASSERT_TRUE(reopened.Prune(*store).ok());
  EXPECT_FALSE(Held(reopened, *store, "b"));
  EXPECT_EQ(Held(reopened, *store, "d"), "v40");
  EXPECT_EQ(Held(reopened, *store, "e"), "v50");
}

}  // namespace
}  // namespace tributary::internal
