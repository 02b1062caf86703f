package dev.tributary.bench.ksb;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.state.Stores;

/**
 * Tributary's order-aggregator as a Kafka Streams application (the baseline of issue 10):
 *
 * <pre>
 *   orders, lines, transaction topics --route--> &lt;app&gt;-cdc-tx-repartition (1 partition)
 *     --assemble--> &lt;app&gt;-cdc-aggregate-repartition (by order id) --aggregate--> output
 * </pre>
 *
 * Usage: java -jar kstreams-baseline.jar [--config FILE] [key=value ...]
 *
 * Keys: order-aggregator's (application.id, bootstrap.servers, state.dir, orders.topic,
 * lines.topic, transaction.topic, output.topic, ...); any other key goes to Kafka Streams as is
 * (e.g. processing.guarantee=at_least_once, num.stream.threads=2).
 */
public final class OrderAggregatorApp {
  private OrderAggregatorApp() {}

  public static void main(String[] args) throws Exception {
    Properties props = parseArgs(args);
    Spec spec = new Spec(props);
    Properties streams = streamsConfig(props);
    int aggregatePartitions = spec.aggregatePartitions > 0 ? spec.aggregatePartitions
        : partitionsOf(streams, spec.ordersTopic);
    Topology topology = buildTopology(spec, aggregatePartitions);
    System.err.println(topology.describe());

    KafkaStreams app = new KafkaStreams(topology, streams);
    CountDownLatch done = new CountDownLatch(1);
    app.setUncaughtExceptionHandler(e -> {
      System.err.println("stream thread failed: " + e);
      e.printStackTrace();
      done.countDown();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
          .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      app.close();
      System.err.println("closed: " + Stats.line());
      done.countDown();
    }, "shutdown"));
    long statusMs = Long.parseLong(props.getProperty("status.interval.ms", "5000"));
    Thread status = new Thread(() -> {
      try {
        while (!done.await(statusMs, TimeUnit.MILLISECONDS)) {
          System.err.println("status: " + app.state() + " " + Stats.line());
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "status");
    status.setDaemon(true);
    status.start();
    app.start();
    done.await();
  }

  static Topology buildTopology(Spec spec, int aggregatePartitions) {
    StreamsBuilder builder = new StreamsBuilder();
    var strings = Consumed.with(Serdes.String(), Serdes.String());
    KStream<String, String> orders =
        builder.stream(spec.ordersTopic, strings.withName("cdc-orders-source"));
    KStream<String, String> lines =
        builder.stream(spec.linesTopic, strings.withName("cdc-lines-source"));
    KStream<String, String> markers =
        builder.stream(spec.transactionTopic, strings.withName("cdc-transaction-source"));

    builder.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(AssembleProcessor.EVENTS), Serdes.String(), Serdes.String())
        .withCachingEnabled());
    builder.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(AssembleProcessor.META), Serdes.String(), Serdes.String())
        .withCachingEnabled());
    builder.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(AssembleProcessor.INDEX), Serdes.String(), Serdes.String())
        .withCachingEnabled());
    builder.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(AggregateProcessor.ROOTS), Serdes.String(), Serdes.String())
        .withCachingEnabled());
    builder.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(AggregateProcessor.CHILDREN), Serdes.String(),
        Serdes.String()).withCachingEnabled());

    orders.merge(lines, Named.as("cdc-merge-lines"))
        .merge(markers, Named.as("cdc-merge-markers"))
        .process(() -> new RouteProcessor(spec), Named.as("cdc-route"))
        .repartition(Repartitioned.<String, String>as("cdc-tx")
            .withKeySerde(Serdes.String()).withValueSerde(Serdes.String())
            .withNumberOfPartitions(1))
        .process(() -> new AssembleProcessor(spec), Named.as("cdc-assemble"),
            AssembleProcessor.EVENTS, AssembleProcessor.META, AssembleProcessor.INDEX)
        .repartition(Repartitioned.<String, String>as("cdc-aggregate")
            .withKeySerde(Serdes.String()).withValueSerde(Serdes.String())
            .withNumberOfPartitions(aggregatePartitions))
        .process(() -> new AggregateProcessor(spec), Named.as("cdc-aggregate-join"),
            AggregateProcessor.ROOTS, AggregateProcessor.CHILDREN)
        .to(spec.outputTopic, Produced.with(Serdes.String(), Serdes.String())
            .withName("cdc-output-sink"));
    return builder.build();
  }

  static Properties parseArgs(String[] args) throws IOException {
    Properties props = new Properties();
    Properties overrides = new Properties();
    for (int i = 0; i < args.length; ++i) {
      String a = args[i];
      if (a.equals("--config") && i + 1 < args.length) {
        try (InputStream in = new FileInputStream(args[++i])) {
          props.load(in);
        }
      } else if (a.startsWith("--config=")) {
        try (InputStream in = new FileInputStream(a.substring("--config=".length()))) {
          props.load(in);
        }
      } else if (a.equals("--help") || a.equals("-h")) {
        System.out.println("usage: java -jar kstreams-baseline.jar [--config FILE] [key=value ...]"
            + "\n  keys: application.id bootstrap.servers state.dir orders.topic lines.topic"
            + "\n        transaction.topic output.topic (see README.md); other keys go to Kafka"
            + " Streams");
        System.exit(0);
      } else {
        String kv = a.startsWith("--") ? a.substring(2) : a;
        int eq = kv.indexOf('=');
        if (eq <= 0) throw new IllegalArgumentException("expected key=value, got " + a);
        overrides.setProperty(kv.substring(0, eq), kv.substring(eq + 1));
      }
    }
    props.putAll(overrides);
    return props;
  }

  static Properties streamsConfig(Properties props) {
    Properties s = new Properties();
    s.setProperty(StreamsConfig.APPLICATION_ID_CONFIG, "kstreams-order-aggregator");
    s.setProperty(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "127.0.0.1:9092");
    s.setProperty(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    s.setProperty(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
    s.setProperty(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
    s.setProperty("auto.offset.reset", "earliest");
    List<String> own = Arrays.asList(Spec.KEYS);
    for (String key : props.stringPropertyNames()) {
      if (!own.contains(key)) s.setProperty(key, props.getProperty(key));
    }
    return s;
  }

  static int partitionsOf(Properties streams, String topic) throws Exception {
    Properties a = new Properties();
    a.setProperty(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG,
        streams.getProperty(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG));
    try (Admin admin = Admin.create(a)) {
      var description = admin.describeTopics(List.of(topic)).allTopicNames()
          .get(60, TimeUnit.SECONDS).get(topic);
      return description.partitions().size();
    }
  }
}
