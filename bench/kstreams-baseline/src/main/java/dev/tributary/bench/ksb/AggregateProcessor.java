package dev.tributary.bench.ksb;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Iterator;
import java.util.Map;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Stage 3, one task per partition of the aggregate repartition topic (by order id): applies a
 * released transaction's slice for one order to the order-row and line-row stores and emits the
 * order's aggregate once: key = order id, value =
 * {&lt;order columns&gt;,"lines":[&lt;line rows by id&gt;],"source_tx":{"id":..,"position":..},
 * "version":N}, or a tombstone when the order was deleted. Lines whose order has not arrived
 * are kept; the aggregate appears when the order does. A slice at or before the order's last
 * applied position is dropped. A column sent as Debezium's unavailable-value placeholder (an
 * unchanged TOASTed value) keeps the stored row's value.
 *
 * <pre>
 *   cdc-roots     r order -> order row;  v order -> "version,position"
 *   cdc-children  order \0 sortable(line key) -> line row
 * </pre>
 */
final class AggregateProcessor implements Processor<String, String, String, String> {
  static final String ROOTS = "cdc-roots";
  static final String CHILDREN = "cdc-children";
  private static final StringSerializer KEYS = new StringSerializer();

  private final Spec spec;
  private ProcessorContext<String, String> context;
  private KeyValueStore<String, String> roots;
  private KeyValueStore<String, String> children;

  AggregateProcessor(Spec spec) {
    this.spec = spec;
  }

  @Override
  public void init(ProcessorContext<String, String> context) {
    this.context = context;
    roots = context.getStateStore(ROOTS);
    children = context.getStateStore(CHILDREN);
  }

  @Override
  public void process(Record<String, String> record) {
    String root = record.key();
    JsonNode slice = Json.parse(record.value());
    long pos = slice.path("pos").asLong();
    long version = 0;
    long lastPos = -1;
    String v = roots.get("v" + root);
    if (v != null) {
      int comma = v.indexOf(',');
      version = Long.parseLong(v.substring(0, comma));
      lastPos = Long.parseLong(v.substring(comma + 1));
    }
    if (pos <= lastPos) {
      Stats.STALE_SLICES.incrementAndGet();
      return;
    }
    String stored = roots.get("r" + root);
    ObjectNode rootRow = stored == null ? null : (ObjectNode) Json.parse(stored);
    boolean rootDeleted = false;
    for (JsonNode op : slice.path("ops")) {
      switch (op.path("o").asText()) {
        case "ru" -> {
          rootRow = fillUnavailable((ObjectNode) op.get("row"), rootRow);
          rootDeleted = false;
        }
        case "rd" -> {
          rootRow = null;
          rootDeleted = true;
        }
        case "cu" -> {
          String childKey = childKey(root, op.path("k").asText());
          String previous = children.get(childKey);
          ObjectNode row = fillUnavailable((ObjectNode) op.get("row"),
              previous == null ? null : (ObjectNode) Json.parse(previous));
          children.put(childKey, Json.write(row));
        }
        case "cd" -> children.delete(childKey(root, op.path("k").asText()));
        default -> throw new IllegalStateException("unknown slice op " + op);
      }
    }
    if (rootRow != null) {
      roots.put("r" + root, Json.write(rootRow));
    } else if (stored != null) {
      roots.delete("r" + root);
    }
    boolean emit = rootRow != null || rootDeleted;
    if (emit) version++;
    roots.put("v" + root, version + "," + Math.max(pos, lastPos));
    if (!emit) return;  // lines wait for their order

    Stats.EMITTED.incrementAndGet();
    if (rootRow == null) {
      context.forward(new Record<String, String>(root, null, record.timestamp()));
      return;
    }
    ObjectNode out = rootRow.deepCopy();
    ArrayNode lines = out.putArray(spec.childArrayField);
    try (KeyValueIterator<String, String> it = children.prefixScan(root + "\0", KEYS)) {
      while (it.hasNext()) lines.add(Json.parse(it.next().value));
    }
    ObjectNode source = out.putObject(spec.sourceField);
    source.put("id", slice.path("tx").asText());
    source.put("position", pos);
    out.put(spec.versionField, version);
    context.forward(new Record<>(root, Json.write(out), record.timestamp()));
  }

  private static String childKey(String root, String key) {
    return root + "\0" + Json.sortable(key);
  }

  /** `row` with each placeholder column replaced by its value in `previous`, where it has one. */
  private ObjectNode fillUnavailable(ObjectNode row, ObjectNode previous) {
    if (previous == null) return row;
    Iterator<Map.Entry<String, JsonNode>> fields = row.fields();
    while (fields.hasNext()) {
      Map.Entry<String, JsonNode> f = fields.next();
      if (f.getValue().isTextual() && f.getValue().asText().equals(spec.unavailablePlaceholder)
          && previous.has(f.getKey())) {
        f.setValue(previous.get(f.getKey()));
      }
    }
    return row;
  }
}
