package io.tuneline.testing;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.function.Predicate;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.eclipse.microprofile.config.ConfigProvider;

/**
 * Plain Kafka clients for tests, the way an outside user talks to the platform: raw bytes and
 * headers, no SmallRye in between.
 */
public final class KafkaTestClient implements AutoCloseable {
    private final String bootstrap;
    private final KafkaProducer<String, byte[]> producer;

    public KafkaTestClient(String bootstrap) {
        this.bootstrap = bootstrap;
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(
                ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        this.producer = new KafkaProducer<>(props);
    }

    /** A client for the broker the running Quarkus test application is connected to. */
    public static KafkaTestClient forApplication() {
        return new KafkaTestClient(
                ConfigProvider.getConfig().getValue("kafka.bootstrap.servers", String.class));
    }

    /** Publishes and waits for the broker's acknowledgement. */
    public void publish(String topic, String key, byte[] value, Map<String, String> headers) {
        ProducerRecord<String, byte[]> record = new ProducerRecord<>(topic, key, value);
        headers.forEach((k, v) -> record.headers().add(k, v.getBytes(StandardCharsets.UTF_8)));
        try {
            producer.send(record).get();
        } catch (Exception e) {
            throw new IllegalStateException("cannot publish to " + topic, e);
        }
    }

    public void publish(String topic, String key, byte[] value) {
        publish(topic, key, value, Map.of());
    }

    public void publish(String topic, String key, String value) {
        publish(topic, key, value.getBytes(StandardCharsets.UTF_8), Map.of());
    }

    /**
     * Reads {@code topic} from the beginning until a record matches {@code until} or {@code
     * timeout} passes; returns every record read.
     */
    public List<ConsumerRecord<String, byte[]>> readUntil(
            String topic, Predicate<List<ConsumerRecord<String, byte[]>>> until, Duration timeout) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, "test-reader-" + UUID.randomUUID());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(
                ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
                ByteArrayDeserializer.class.getName());
        List<ConsumerRecord<String, byte[]>> seen = new ArrayList<>();
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(seen::add);
                if (until.test(seen)) {
                    return seen;
                }
            }
        }
        throw new AssertionError(
                "no matching record on " + topic + " within " + timeout + "; read " + seen.size());
    }

    /**
     * The first record on {@code topic} keyed by {@code jobId} whose {@code ce_type} is {@code
     * ceType}, waiting up to {@code timeout} for it.
     */
    public ConsumerRecord<String, byte[]> awaitEvent(
            String topic, String jobId, String ceType, Duration timeout) {
        Predicate<ConsumerRecord<String, byte[]>> match =
                r -> jobId.equals(r.key()) && ceType.equals(header(r, "ce_type"));
        return readUntil(topic, rs -> rs.stream().anyMatch(match), timeout).stream()
                .filter(match)
                .findFirst()
                .orElseThrow();
    }

    /** The value of a header as text, or null. */
    public static String header(ConsumerRecord<String, byte[]> record, String name) {
        var h = record.headers().lastHeader(name);
        return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        producer.close(Duration.ofSeconds(5));
    }
}
