package dev.tributary.bench.ksb;

import java.util.Properties;

/** The application's settings beside Kafka Streams' own (the names order-aggregator uses). */
final class Spec {
  final String ordersTopic;
  final String linesTopic;
  final String transactionTopic;
  final String outputTopic;
  final String ordersCollection;  // as END markers name the table: inventory.purchaseorder
  final String linesCollection;
  final String rootKeyColumn;
  final String childKeyColumn;
  final String childParentColumn;
  final String childArrayField;
  final String sourceField;
  final String versionField;
  final String unavailablePlaceholder;
  final int aggregatePartitions;  // 0: as many as the orders topic

  Spec(Properties p) {
    ordersTopic = p.getProperty("orders.topic", "dbserver1.inventory.purchaseorder");
    linesTopic = p.getProperty("lines.topic", "dbserver1.inventory.orderline");
    transactionTopic = p.getProperty("transaction.topic", "dbserver1.transaction");
    outputTopic = p.getProperty("output.topic", "order-aggregates");
    ordersCollection = p.getProperty("orders.data.collection", afterFirstDot(ordersTopic));
    linesCollection = p.getProperty("lines.data.collection", afterFirstDot(linesTopic));
    rootKeyColumn = p.getProperty("root.key.column", "id");
    childKeyColumn = p.getProperty("child.key.column", "id");
    childParentColumn = p.getProperty("child.parent.column", "order_id");
    childArrayField = p.getProperty("child.array.field", "lines");
    sourceField = p.getProperty("aggregate.source.field", "source_tx");
    versionField = p.getProperty("aggregate.version.field", "version");
    unavailablePlaceholder =
        p.getProperty("unavailable.value.placeholder", "__debezium_unavailable_value");
    aggregatePartitions = Integer.parseInt(p.getProperty("aggregate.partitions", "0"));
  }

  /** "dbserver1.inventory.orderline" -> "inventory.orderline". */
  static String afterFirstDot(String topic) {
    int dot = topic.indexOf('.');
    return dot < 0 ? topic : topic.substring(dot + 1);
  }

  /** Every key this class reads: not passed to Kafka Streams. */
  static final String[] KEYS = {
    "orders.topic", "lines.topic", "transaction.topic", "output.topic", "orders.data.collection",
    "lines.data.collection", "root.key.column", "child.key.column", "child.parent.column",
    "child.array.field", "aggregate.source.field", "aggregate.version.field",
    "unavailable.value.placeholder", "aggregate.partitions", "status.interval.ms"
  };
}
