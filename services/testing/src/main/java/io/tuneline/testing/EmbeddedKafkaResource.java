package io.tuneline.testing;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.smallrye.reactive.messaging.kafka.companion.test.EmbeddedKafkaBroker;
import java.util.Map;

/**
 * A real KRaft Kafka broker inside the test JVM (SmallRye's {@link EmbeddedKafkaBroker}); no
 * Docker. Sets {@code kafka.bootstrap.servers} for the application under test.
 */
public class EmbeddedKafkaResource implements QuarkusTestResourceLifecycleManager {
    private EmbeddedKafkaBroker broker;

    @Override
    public Map<String, String> start() {
        broker = new EmbeddedKafkaBroker().withDeleteLogDirsOnClose(true).start();
        return Map.of("kafka.bootstrap.servers", broker.getAdvertisedListeners());
    }

    @Override
    public void stop() {
        if (broker != null) {
            broker.close();
        }
    }
}
