#include "operators/transaction_aggregate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "operators/internal/aggregate_join.h"
#include "operators/internal/cdc_router.h"
#include "operators/internal/tx_assembler.h"

namespace tributary {

absl::StatusOr<IncompletePolicy> ParseIncompletePolicy(std::string_view text) {
  if (text == "hold") return IncompletePolicy::kHold;
  if (text == "release") return IncompletePolicy::kRelease;
  if (text == "fail") return IncompletePolicy::kFail;
  return absl::InvalidArgumentError(absl::StrCat(
      "incomplete transaction policy '", Sv(text), "': expected hold, release or fail"));
}

absl::Status AddTransactionAggregate(Topology& topology,
                                     const TransactionAggregateSpec& spec_in) {
  if (spec_in.root.topic.empty() || spec_in.transaction_topic.empty() ||
      spec_in.output_topic.empty()) {
    return absl::InvalidArgumentError(
        "transaction aggregate: root topic, transaction topic and output topic are required");
  }
  if (spec_in.children.size() > 200) {
    return absl::InvalidArgumentError("transaction aggregate: at most 200 child tables");
  }
  std::vector<std::string> own_fields = {spec_in.source_field, spec_in.version_field};
  for (const CdcTable& child : spec_in.children) {
    if (child.parent_column.empty() || child.array_field.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "transaction aggregate: child table '", child.data_collection,
          "' needs a parent column and an array field"));
    }
    own_fields.push_back(child.array_field);
  }
  std::sort(own_fields.begin(), own_fields.end());
  if (own_fields.front().empty()) {
    return absl::InvalidArgumentError(
        "transaction aggregate: the source and version field names must not be empty");
  }
  if (std::adjacent_find(own_fields.begin(), own_fields.end()) != own_fields.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transaction aggregate: the aggregate's own fields (array fields, source and version "
        "field) must have distinct names: ", absl::StrJoin(own_fields, ", ")));
  }
  // Processors keep a reference to the spec; the factories own it.
  auto spec = std::make_shared<const TransactionAggregateSpec>(spec_in);
  const std::string& n = spec->name;
  const std::string tx_topic = n + "-tx-repartition";
  const std::string root_topic = internal::TxAssembler::AggregateTopic(*spec);
  topology.RequirePartitions(
      spec->transaction_topic, 1,
      "Debezium leaves the transaction topic's partitioning to the producer, so only a "
      "single partition keeps BEGIN/END markers in commit order");
  topology.AddRepartitionTopic(tx_topic, 1);
  if (spec->aggregate_partitions > 0) {
    topology.AddRepartitionTopic(root_topic, spec->aggregate_partitions);
  } else {
    topology.AddRepartitionTopic(root_topic, 0, spec->root.topic);
  }

  // Route: one sub-topology per input topic, so that each may have its own
  // partition count.
  std::vector<const CdcTable*> tables = {&spec->root};
  for (const CdcTable& child : spec->children) tables.push_back(&child);
  for (size_t t = 0; t < tables.size(); ++t) {
    const int table = static_cast<int>(t);
    const std::string source = absl::StrCat(n, "-source-", t);
    const std::string route = absl::StrCat(n, "-route-", t);
    topology.AddSource(source, {tables[t]->topic})
        .AddProcessor(
            route,
            [spec, table] { return std::make_unique<internal::CdcRouter>(*spec, table); },
            {source})
        // The root router keeps only its last transaction; a child router
        // its child -> root index, as large as the child table.
        .AddStateStore({internal::CdcRouter::StateStore(*spec, table),
                        table == 0 ? StoreType::kInMemory : StoreType::kRocksDb,
                        /*logging=*/true, /*cache_weight=*/table == 0 ? 0.0 : 1.0},
                       {route})
        .AddSink(internal::CdcRouter::ReportSink(*spec, table), tx_topic, {route})
        .AddSink(internal::CdcRouter::RowSink(*spec, table), root_topic, {route},
                 internal::TxAssembler::BroadcastPartition);
  }
  topology.AddSource(n + "-source-tx", {spec->transaction_topic})
      .AddProcessor(
          n + "-route-tx",
          [spec] { return std::make_unique<internal::CdcRouter>(*spec, -1); },
          {n + "-source-tx"})
      .AddSink(n + "-route-tx-sink", tx_topic, {n + "-route-tx"});

  // Assemble: a single task, on metadata only.
  const std::string assemble = n + "-assemble";
  topology.AddSource(n + "-source-assemble", {tx_topic})
      .AddProcessor(
          assemble, [spec] { return std::make_unique<internal::TxAssembler>(*spec); },
          {n + "-source-assemble"})
      // Read and written for every transaction: the largest share of the cache.
      .AddStateStore({internal::TxAssembler::MetaStore(*spec), StoreType::kRocksDb,
                      /*logging=*/true, /*cache_weight=*/8.0},
                     {assemble})
      .AddSink(n + "-assemble-sink", root_topic, {assemble},
               internal::TxAssembler::BroadcastPartition);

  // Aggregate: parallel by root key.
  const std::string aggregate = n + "-aggregate";
  topology.AddSource(n + "-source-aggregate", {root_topic})
      .AddProcessor(
          aggregate, [spec] { return std::make_unique<internal::AggregateJoin>(*spec); },
          {n + "-source-aggregate"})
      .AddStateStore({internal::AggregateJoin::RootsStore(*spec), StoreType::kRocksDb,
                      /*logging=*/true, /*cache_weight=*/2.0},
                     {aggregate})
      .AddStateStore({internal::AggregateJoin::ChildrenStore(*spec), StoreType::kRocksDb,
                      /*logging=*/true, /*cache_weight=*/2.0},
                     {aggregate})
      // Rebuilt from the input after a restart (see AggregateJoin): no changelog.
      .AddStateStore({internal::AggregateJoin::PendingStore(*spec), StoreType::kRocksDb,
                      /*logging=*/false, /*cache_weight=*/0.0},
                     {aggregate})
      .AddSink(n + "-output", spec->output_topic, {aggregate});
  if (!spec->query_name.empty()) {
    QuerySpec query;
    query.name = spec->query_name;
    query.store = internal::AggregateJoin::RootsStore(*spec);
    query.key = internal::AggregateJoin::QueryKey;
    query.run = [spec](const std::function<KeyValueStore*(std::string_view)>& stores,
                       std::string_view key) -> absl::StatusOr<std::optional<std::string>> {
      KeyValueStore* roots = stores(internal::AggregateJoin::RootsStore(*spec));
      KeyValueStore* children = stores(internal::AggregateJoin::ChildrenStore(*spec));
      if (roots == nullptr || children == nullptr) {
        return absl::InternalError("the aggregate task has no roots or children store");
      }
      return internal::AggregateJoin::Query(*spec, *roots, *children, key);
    };
    topology.AddQuery(std::move(query));
  }
  return absl::OkStatus();
}

}  // namespace tributary
