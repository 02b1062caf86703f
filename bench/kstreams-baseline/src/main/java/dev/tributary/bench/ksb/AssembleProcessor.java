package dev.tributary.bench.ksb;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Stage 2, ONE task (the tx repartition topic has one partition): buffers routed change events
 * per transaction in RocksDB, queues END markers by their offset in the transaction topic (the
 * commit order), and releases each transaction, strictly in that order, once END has arrived
 * and the distinct events buffered per consumed table equal END's counts. A released
 * transaction becomes one slice per touched order, keyed by order id, for the aggregate
 * repartition topic:
 *
 * <pre>
 *   {"tx":"&lt;xid&gt;","pos":N,"ops":[{"o":"ru","row":{..}} | {"o":"rd"}
 *                                | {"o":"cu","k":"&lt;line key&gt;","row":{..}} | {"o":"cd","k":".."}]}
 * </pre>
 *
 * Stores (RocksDB, changelogged):
 *
 * <pre>
 *   cdc-tx-events   xid \0 lsn(20 digits) \0 table op key  -> routed event
 *   cdc-tx-meta     E xid -> END;  N xid -> "orders,lines" distinct events buffered;
 *                   Q pos(20 digits) -> xid (the queue);  R xid -> pos (released)
 *   cdc-child-index line key -> order key (where a line belongs now)
 * </pre>
 *
 * One change event is (xid, lsn, table, op, key): a repeat is stored once. Anything of a
 * transaction already released is dropped.
 */
final class AssembleProcessor implements Processor<String, String, String, String> {
  static final String EVENTS = "cdc-tx-events";
  static final String META = "cdc-tx-meta";
  static final String INDEX = "cdc-child-index";
  private static final Logger LOG = LoggerFactory.getLogger(AssembleProcessor.class);
  private static final StringSerializer KEYS = new StringSerializer();

  private final Spec spec;
  private ProcessorContext<String, String> context;
  private KeyValueStore<String, String> events;
  private KeyValueStore<String, String> meta;
  private KeyValueStore<String, String> index;
  // END position -> xid of every transaction whose END is here and which is not released:
  // a copy of the Q keys of the meta store, rebuilt in init.
  private final TreeMap<Long, String> queue = new TreeMap<>();
  private String warnedAbout = null;

  AssembleProcessor(Spec spec) {
    this.spec = spec;
  }

  @Override
  public void init(ProcessorContext<String, String> context) {
    this.context = context;
    events = context.getStateStore(EVENTS);
    meta = context.getStateStore(META);
    index = context.getStateStore(INDEX);
    queue.clear();
    try (KeyValueIterator<String, String> it = meta.prefixScan("Q", KEYS)) {
      while (it.hasNext()) {
        KeyValue<String, String> kv = it.next();
        queue.put(Long.parseLong(kv.key.substring(1)), kv.value);
      }
    }
  }

  @Override
  public void process(Record<String, String> record) {
    String xid = record.key();
    if (meta.get("R" + xid) != null) {  // released: a re-delivery
      Stats.DUPLICATES.incrementAndGet();
      return;
    }
    JsonNode routed = Json.parse(record.value());
    if ("E".equals(routed.path("k").asText())) {
      if (meta.get("E" + xid) != null) {
        Stats.DUPLICATES.incrementAndGet();
        return;
      }
      long pos = routed.path("pos").asLong();
      meta.put("E" + xid, record.value());
      meta.put(queueKey(pos), xid);
      queue.put(pos, xid);
    } else {
      int table = routed.path("t").asInt();
      String eventKey = xid + "\0" + String.format("%020d", routed.path("lsn").asLong()) + "\0"
          + table + routed.path("op").asText() + routed.path("key").asText();
      if (events.get(eventKey) != null) {
        Stats.DUPLICATES.incrementAndGet();
        return;
      }
      events.put(eventKey, record.value());
      Stats.EVENTS_BUFFERED.incrementAndGet();
      long[] counts = counts(xid);
      counts[table]++;
      meta.put("N" + xid, counts[0] + "," + counts[1]);
      if (queue.isEmpty() || !queue.firstEntry().getValue().equals(xid)) return;
    }
    releaseReady(record.timestamp());
  }

  private long[] counts(String xid) {
    String n = meta.get("N" + xid);
    if (n == null) return new long[2];
    int comma = n.indexOf(',');
    return new long[] {Long.parseLong(n.substring(0, comma)), Long.parseLong(n.substring(comma + 1))};
  }

  private static String queueKey(long pos) {
    return "Q" + String.format("%020d", pos);
  }

  /** Releases the head of the queue while it is complete. */
  private void releaseReady(long timestamp) {
    while (!queue.isEmpty()) {
      Map.Entry<Long, String> head = queue.firstEntry();
      String xid = head.getValue();
      JsonNode end = Json.parse(meta.get("E" + xid));
      long[] have = counts(xid);
      long wantOrders = end.path("n").path(spec.ordersCollection).asLong(0);
      long wantLines = end.path("n").path(spec.linesCollection).asLong(0);
      if (have[0] != wantOrders || have[1] != wantLines) {
        if ((have[0] > wantOrders || have[1] > wantLines) && !xid.equals(warnedAbout)) {
          warnedAbout = xid;
          LOG.warn("transaction {}: more events buffered ({},{}) than END counts ({},{}): held "
              + "(connector restart inside it? not handled by this baseline)", xid, have[0],
              have[1], wantOrders, wantLines);
        }
        return;
      }
      release(xid, head.getKey(), timestamp);
      queue.pollFirstEntry();
    }
  }

  private void release(String xid, long pos, long timestamp) {
    List<JsonNode> changes = new ArrayList<>();
    List<String> keys = new ArrayList<>();
    try (KeyValueIterator<String, String> it = events.prefixScan(xid + "\0", KEYS)) {
      while (it.hasNext()) {
        KeyValue<String, String> kv = it.next();
        keys.add(kv.key);
        changes.add(Json.parse(kv.value));
      }
    }
    for (String k : keys) events.delete(k);
    meta.delete("E" + xid);
    meta.delete("N" + xid);
    meta.delete(queueKey(pos));
    meta.put("R" + xid, Long.toString(pos));

    // Ops per touched order, in the transaction's order (by LSN).
    Map<String, ArrayNode> slices = new LinkedHashMap<>();
    for (JsonNode change : changes) {
      String op = change.path("op").asText();
      String key = change.path("key").asText();
      JsonNode row = change.get("row");
      boolean upsert = op.equals("c") || op.equals("u") || op.equals("r");
      if (!upsert && !op.equals("d")) {
        LOG.warn("transaction {}: op '{}' not supported, ignored", xid, op);
        continue;
      }
      if (change.path("t").asInt() == 0) {
        ObjectNode o = slice(slices, key).addObject();
        o.put("o", upsert ? "ru" : "rd");
        if (upsert) o.set("row", row);
        continue;
      }
      String indexKey = key;
      String oldRoot = index.get(indexKey);
      String newRoot = null;
      if (upsert) {
        JsonNode parent = row.get(spec.childParentColumn);
        if (!Json.isNull(parent)) newRoot = Json.write(parent);
      }
      if (oldRoot != null && !oldRoot.equals(newRoot)) {
        ObjectNode o = slice(slices, oldRoot).addObject();
        o.put("o", "cd");
        o.put("k", key);
      } else if (oldRoot == null && !upsert) {
        Stats.ORPHAN_CHILD_DELETES.incrementAndGet();
      }
      if (newRoot != null) {
        ObjectNode o = slice(slices, newRoot).addObject();
        o.put("o", "cu");
        o.put("k", key);
        o.set("row", row);
        if (!newRoot.equals(oldRoot)) index.put(indexKey, newRoot);
      } else if (oldRoot != null) {
        index.delete(indexKey);
      }
    }
    for (Map.Entry<String, ArrayNode> s : slices.entrySet()) {
      ObjectNode value = Json.object();
      value.put("tx", xid);
      value.put("pos", pos);
      value.set("ops", s.getValue());
      context.forward(new Record<>(s.getKey(), Json.write(value), timestamp));
    }
    Stats.RELEASED.incrementAndGet();
  }

  private static ArrayNode slice(Map<String, ArrayNode> slices, String root) {
    return slices.computeIfAbsent(root, r -> Json.MAPPER.createArrayNode());
  }
}
