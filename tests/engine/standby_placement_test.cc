// The standby placement rule (engine/internal/standby_tasks.h), no broker:
// instances from client ids, and which instances keep a task's standbys.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/internal/standby_tasks.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary::internal {
namespace {

TEST(StandbyPlacementTest, InstanceIsTheClientIdUpToItsStreamThread) {
  EXPECT_EQ(InstanceOfClientId("orders-0123456789abcdef-StreamThread-0-consumer"),
            "orders-0123456789abcdef");
  EXPECT_EQ(InstanceOfClientId("orders-0123456789abcdef-StreamThread-3-consumer"),
            "orders-0123456789abcdef");
  EXPECT_EQ(InstanceOfClientId("rdkafka"), "");
  EXPECT_EQ(InstanceOfClientId("-StreamThread-0-consumer"), "");
}

TEST(StandbyPlacementTest, NeverTheActiveInstanceAndAtMostTheOthers) {
  const std::set<std::string> instances = {"a", "b", "c"};
  for (int p = 0; p < 20; ++p) {
    const TaskId task{0, p};
    std::vector<std::string> one = StandbyInstances(task, "a", instances, 1);
    ASSERT_EQ(one.size(), 1u);
    EXPECT_NE(one[0], "a");
    std::vector<std::string> all = StandbyInstances(task, "a", instances, 5);
    EXPECT_THAT(all, ::testing::UnorderedElementsAre("b", "c"));
    EXPECT_EQ(all[0], one[0]) << "the first choice is the same for any replica count";
  }
  EXPECT_TRUE(StandbyInstances({0, 0}, "a", {"a"}, 1).empty());
}

TEST(StandbyPlacementTest, DeterministicBalancedAndStableWhenAnotherInstanceLeaves) {
  const std::set<std::string> instances = {"app-1111", "app-2222", "app-3333", "app-4444"};
  std::map<std::string, int> standbys;
  for (int p = 0; p < 200; ++p) {
    const TaskId task{p % 3, p};
    const std::string active = *std::next(instances.begin(), p % 4);
    std::vector<std::string> chosen = StandbyInstances(task, active, instances, 1);
    ASSERT_EQ(chosen.size(), 1u);
    EXPECT_EQ(StandbyInstances(task, active, instances, 1), chosen);  // the same on every instance
    ++standbys[chosen[0]];
    // An instance other than the chosen one (and the active one) leaves:
    // the standby stays where it is.
    for (const std::string& leaving : instances) {
      if (leaving == chosen[0] || leaving == active) continue;
      std::set<std::string> fewer = instances;
      fewer.erase(leaving);
      EXPECT_EQ(StandbyInstances(task, active, fewer, 1), chosen);
    }
  }
  for (const std::string& instance : instances) {
    EXPECT_GT(standbys[instance], 200 / 4 / 2) << instance << " keeps too few standbys";
  }
}

}  // namespace
}  // namespace tributary::internal
